//! A private PKI made with openssl at test time: a CA (`CA:TRUE`), a server certificate it
//! signs for 127.0.0.1/::1/localhost (`CA:FALSE`, as a real registry's is), and client
//! certificates for mTLS. Keys are EC P-256; everything lives in the given directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::require_tool;

/// The files of a CA and the server certificate it signed.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Server certificate (leaf, `CA:FALSE`) for 127.0.0.1, ::1 and localhost.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A client certificate and its key (PEM), signed by a [`Pki`]'s CA.
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    require_tool("openssl");
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn ec_key(path: &Path, dir: &Path) {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            s(path),
        ],
        dir,
    );
}

impl Pki {
    /// A fresh CA named `name` (its files are prefixed with it) and a server certificate.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let p = |suffix: &str| dir.join(format!("{name}-{suffix}"));
        let (ca_cert, ca_key) = (p("ca.crt"), p("ca.key"));
        ec_key(&ca_key, dir);
        openssl(
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                s(&ca_key),
                "-out",
                s(&ca_cert),
                "-days",
                "2",
                "-subj",
                &format!("/CN=ocibuild test CA {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir,
        );
        let pki = Pki {
            ca_cert,
            ca_key,
            server_cert: p("server.crt"),
            server_key: p("server.key"),
        };
        pki.sign(
            dir,
            &pki.server_cert,
            &pki.server_key,
            "localhost",
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n",
        );
        pki
    }

    /// A client certificate for mTLS (`extendedKeyUsage=clientAuth`) signed by this CA.
    pub fn client_cert(&self, dir: &Path, name: &str) -> ClientCert {
        let c = ClientCert {
            cert: dir.join(format!("{name}.cert")),
            key: dir.join(format!("{name}.key")),
        };
        self.sign(
            dir,
            &c.cert,
            &c.key,
            name,
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        );
        c
    }

    fn sign(&self, dir: &Path, cert: &Path, key: &Path, cn: &str, ext: &str) {
        ec_key(key, dir);
        let csr = cert.with_extension("csr");
        let extfile = cert.with_extension("ext");
        std::fs::write(&extfile, ext).unwrap();
        openssl(
            &[
                "req",
                "-new",
                "-key",
                s(key),
                "-out",
                s(&csr),
                "-subj",
                &format!("/CN={cn}"),
            ],
            dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&self.ca_cert),
                "-CAkey",
                s(&self.ca_key),
                "-CAcreateserial",
                "-out",
                s(cert),
                "-days",
                "2",
                "-extfile",
                s(&extfile),
            ],
            dir,
        );
    }
}

/// A certs.d tree (`<root>/<host:port>/`) for `OCIBUILD_CERTS_D`: `ca.crt` when given, and
/// a client certificate as `client.cert` + `client.key` when given. Returns the root.
pub fn certs_d(root: &Path, host: &str, ca: Option<&Path>, client: Option<&ClientCert>) -> PathBuf {
    let dir = root.join(host);
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(ca) = ca {
        std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    }
    if let Some(c) = client {
        std::fs::copy(&c.cert, dir.join("client.cert")).unwrap();
        std::fs::copy(&c.key, dir.join("client.key")).unwrap();
    }
    root.to_path_buf()
}
