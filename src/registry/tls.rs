//! TLS trust per registry host: system roots plus `--ca-cert` files plus the host's
//! `certs.d` directories (`/etc/docker/certs.d/<host:port>/*.crt`,
//! `/etc/containers/certs.d/<host:port>/*.crt`), client certificates for mTLS from the
//! same directories (`<name>.cert` + `<name>.key`, as Docker reads them), and
//! `--insecure-registry` matching.
//!
//! `OCIBUILD_CERTS_D` (a `:`-separated list of directories) replaces the two default
//! certs.d roots; tests use it to avoid writing under /etc.

use std::path::{Path, PathBuf};

use super::RegistryError;

/// A trusted certificate, DER-encoded.
pub type Der = Vec<u8>;

/// Docker's and podman's per-host CA directories.
pub const DEFAULT_CERTS_D: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// Environment variable replacing [`DEFAULT_CERTS_D`].
pub const CERTS_D_ENV: &str = "OCIBUILD_CERTS_D";

/// Trust settings shared by every host of a run.
#[derive(Clone, Debug)]
pub struct Trust {
    /// Certificates of the `--ca-cert` files (each may hold several PEM certificates).
    global: Vec<Der>,
    certs_d: Vec<PathBuf>,
    insecure: Vec<String>,
}

impl Trust {
    /// Reads the `--ca-cert` files now, so a bad file fails the run before any network use.
    pub fn new(
        ca_certs: &[PathBuf],
        insecure: &[String],
        certs_d: Vec<PathBuf>,
    ) -> Result<Trust, RegistryError> {
        let mut global = Vec::new();
        for path in ca_certs {
            global.extend(read_cert_file(path)?);
        }
        Ok(Trust {
            global,
            certs_d,
            insecure: insecure.iter().map(|h| normalize_host(h)).collect(),
        })
    }

    /// The certs.d roots from `OCIBUILD_CERTS_D`, else the defaults.
    pub fn certs_d_from_env() -> Vec<PathBuf> {
        match std::env::var_os(CERTS_D_ENV) {
            Some(v) if !v.is_empty() => std::env::split_paths(&v).collect(),
            _ => DEFAULT_CERTS_D.iter().map(PathBuf::from).collect(),
        }
    }

    /// Whether `--insecure-registry` names `host` (`host:port` exactly, or the bare host,
    /// which then covers every port).
    pub fn is_insecure(&self, host: &str) -> bool {
        let host = normalize_host(host);
        let bare = strip_port(&host);
        self.insecure
            .iter()
            .any(|h| *h == host || (!has_port(h) && h == bare))
    }

    /// Extra roots for `host`: the global ones plus `*.crt` from its certs.d directories.
    /// A missing directory is normal; an unreadable or malformed file is an error.
    pub fn roots_for(&self, host: &str) -> Result<Vec<Der>, RegistryError> {
        let mut roots = self.global.clone();
        for f in self.host_files(host, "crt")? {
            roots.extend(read_cert_file(&f)?);
        }
        Ok(roots)
    }

    /// The client certificate for `host` (mTLS): the first `<name>.cert` in its certs.d
    /// directories with its `<name>.key`, as one PEM (key + certificate chain). A
    /// certificate without its key, or a key without its certificate, is an error, as in
    /// Docker.
    pub fn identity_for(&self, host: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        if let Some(cert) = self.host_files(host, "cert")?.into_iter().next() {
            let key = cert.with_extension("key");
            let bad = |path: &Path, reason: &str| RegistryError::CaCert {
                path: path.to_path_buf(),
                reason: reason.to_string(),
            };
            if !key.is_file() {
                return Err(bad(&cert, "client certificate without its .key file"));
            }
            let read = |p: &Path| {
                std::fs::read(p).map_err(|source| RegistryError::Io {
                    path: p.to_path_buf(),
                    source,
                })
            };
            let mut pem = read(&key)?;
            pem.push(b'\n');
            pem.extend(read(&cert)?);
            reqwest::Identity::from_pem(&pem).map_err(|_| {
                bad(
                    &cert,
                    "not a PEM client certificate with a matching PEM key",
                )
            })?;
            return Ok(Some(pem));
        }
        for key in self.host_files(host, "key")? {
            if !key.with_extension("cert").is_file() {
                return Err(RegistryError::CaCert {
                    path: key,
                    reason: "client key without its .cert file".into(),
                });
            }
        }
        Ok(None)
    }

    /// `*.<ext>` in `host`'s certs.d directories, sorted per directory. A missing or
    /// unreadable directory is normal (certs.d under /etc is often root-only).
    fn host_files(&self, host: &str, ext: &str) -> Result<Vec<PathBuf>, RegistryError> {
        let mut out = Vec::new();
        for root in &self.certs_d {
            let dir = root.join(host);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
                Err(source) => return Err(RegistryError::Io { path: dir, source }),
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect();
            files.sort();
            out.extend(files);
        }
        Ok(out)
    }
}

/// Decodes the `CERTIFICATE` blocks of a PEM file (RFC 7468); other blocks are skipped.
fn pem_certificates(data: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b)
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

/// Reads a PEM (one or more certificates) or DER certificate file, checking it parses so
/// the error names the file instead of surfacing later as a client build failure.
fn read_cert_file(path: &Path) -> Result<Vec<Der>, RegistryError> {
    let data = std::fs::read(path).map_err(|source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: &str| RegistryError::CaCert {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let is_pem = data.windows(11).any(|w| w == b"-----BEGIN ");
    let certs = if is_pem {
        reqwest::Certificate::from_pem_bundle(&data)
            .map_err(|_| bad("not a valid PEM certificate"))?;
        let certs = pem_certificates(&data);
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block in the file"));
        }
        certs
    } else if data.first() == Some(&0x30) {
        // DER starts with a SEQUENCE tag.
        vec![data]
    } else {
        return Err(bad("neither PEM nor DER"));
    };
    // Parsed as trust anchors now: the system store is only loaded at the first TLS
    // handshake, and a bad certificate must name its file, not fail that handshake.
    let mut store = rustls::RootCertStore::empty();
    for der in &certs {
        store
            .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
            .map_err(|e| bad(&format!("not a usable CA certificate: {e}")))?;
    }
    Ok(certs)
}

fn normalize_host(h: &str) -> String {
    let h = h.trim();
    let h = h
        .strip_prefix("https://")
        .or_else(|| h.strip_prefix("http://"))
        .unwrap_or(h);
    h.trim_end_matches('/').to_ascii_lowercase()
}

fn has_port(h: &str) -> bool {
    strip_port(h) != h
}

/// `host:port` → `host`; `[::1]:5000` → `[::1]`.
fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return match h.find(']') {
            Some(i) => &h[..=i],
            None => h,
        };
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.contains(':') => {
            host
        }
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PEM block; only its framing and base64 are checked when reading (X.509 parsing
    /// happens when the TLS client is built).
    /// A real CA certificate (roots are parsed as trust anchors when read).
    const CA: &str = include_str!("../../testdata/certs/unit-test-ca.pem");

    /// A certificate-shaped PEM block around a tiny DER value (decoding tests).
    fn pem() -> String {
        use base64::Engine as _;
        let body =
            base64::engine::general_purpose::STANDARD.encode([0x30u8, 0x03, 0x02, 0x01, 0x00]);
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn insecure_matching() {
        let t = Trust::new(
            &[],
            &[
                "myreg.com:5000".into(),
                "lan-host".into(),
                "https://Other:443/".into(),
            ],
            vec![],
        )
        .unwrap();
        assert!(t.is_insecure("myreg.com:5000"));
        assert!(!t.is_insecure("myreg.com:5001"));
        assert!(!t.is_insecure("myreg.com"));
        assert!(t.is_insecure("lan-host"));
        assert!(t.is_insecure("lan-host:8080"));
        assert!(t.is_insecure("other:443"));
        assert!(!t.is_insecure("example.com"));
        assert_eq!(strip_port("[::1]:5000"), "[::1]");
    }

    #[test]
    fn certs_d_per_host() {
        let root = tempfile::tempdir().unwrap();
        let host_dir = root.path().join("reg.example:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("ca.crt"), CA).unwrap();
        // Client certificate and key files are not roots.
        std::fs::write(host_dir.join("client.cert"), pem()).unwrap();
        std::fs::write(host_dir.join("client.key"), "key").unwrap();
        let t = Trust::new(
            &[],
            &[],
            vec![root.path().to_path_buf(), root.path().join("absent")],
        )
        .unwrap();
        assert_eq!(t.roots_for("reg.example:5000").unwrap().len(), 1);
        assert_eq!(t.roots_for("other:5000").unwrap().len(), 0);

        std::fs::write(host_dir.join("bad.crt"), "garbage").unwrap();
        let err = t.roots_for("reg.example:5000").unwrap_err();
        assert!(matches!(err, RegistryError::CaCert { .. }), "{err}");
    }

    #[test]
    fn client_certificates() {
        let root = tempfile::tempdir().unwrap();
        let t = Trust::new(&[], &[], vec![root.path().to_path_buf()]).unwrap();
        assert!(t.identity_for("reg:5000").unwrap().is_none());
        let dir = root.path().join("reg:5000");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("client.cert"), pem()).unwrap();
        let err = t.identity_for("reg:5000").unwrap_err().to_string();
        assert!(err.contains("client.cert") && err.contains(".key"), "{err}");
        std::fs::write(dir.join("client.key"), "not a key").unwrap();
        assert!(matches!(
            t.identity_for("reg:5000"),
            Err(RegistryError::CaCert { .. })
        ));
        std::fs::remove_file(dir.join("client.cert")).unwrap();
        let err = t.identity_for("reg:5000").unwrap_err().to_string();
        assert!(err.contains("client.key") && err.contains(".cert"), "{err}");
    }

    #[test]
    fn pem_to_der() {
        let two = format!("junk\n{}{}", pem(), pem());
        let certs = pem_certificates(two.as_bytes());
        assert_eq!(certs, vec![vec![0x30u8, 0x03, 0x02, 0x01, 0x00]; 2]);
    }

    #[test]
    fn ca_cert_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, CA).unwrap();
        let t = Trust::new(std::slice::from_ref(&good), &[], vec![]).unwrap();
        assert_eq!(t.roots_for("any").unwrap().len(), 1);
        // A PEM block that is not a certificate is refused, naming the file.
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, pem()).unwrap();
        let err = Trust::new(std::slice::from_ref(&bad), &[], vec![]).unwrap_err();
        assert!(
            matches!(&err, RegistryError::CaCert { path, .. } if path == &bad),
            "{err}"
        );
        let missing = dir.path().join("nope.pem");
        assert!(matches!(
            Trust::new(&[missing], &[], vec![]),
            Err(RegistryError::Io { .. })
        ));
    }
}
