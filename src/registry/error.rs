//! Registry errors, classified so the CLI can map them to exit codes (the mapping of
//! HTTP statuses and transport failures onto them is in `classify.rs`).
//!
//! Messages name the host and say what to do. They never contain credentials: nothing here
//! ever sees a password, and registry response bodies are bounded and shown only as the
//! registry's own error code and message.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Longest registry-supplied text (error message, body) put into an error.
const MAX_REASON: usize = 300;

#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry could not be reached, or the connection broke (refused, DNS, timeout,
    /// reset). `transient` failures are retried; DNS failures are not.
    #[error("cannot reach registry {registry}: {reason} ({})", network_hint(.registry, *.transient))]
    Network {
        registry: String,
        reason: String,
        transient: bool,
    },
    /// The TLS handshake failed: untrusted or invalid certificate, or no TLS at all.
    #[error(
        "TLS with {registry} failed: {reason}. If it uses a private or self-signed CA, trust it \
         with --ca-cert FILE or by putting it in /etc/docker/certs.d/{registry}/ca.crt; to skip \
         verification (or to use plain HTTP) pass --insecure-registry {registry}"
    )]
    Tls { registry: String, reason: String },
    /// The registry refused our TLS client certificate, or wants one (mTLS).
    #[error(
        "TLS with {registry} failed: {reason}. The registry requires a client certificate: put \
         it and its key in /etc/docker/certs.d/{registry}/client.cert and client.key (PEM)"
    )]
    ClientCert { registry: String, reason: String },
    /// 401/403, `UNAUTHORIZED`, `DENIED`, or a refused token request.
    #[error(
        "authentication with {registry} failed: {reason} (run `ocibuild login {registry}` or \
         check $DOCKER_CONFIG/config.json)"
    )]
    Auth { registry: String, reason: String },
    /// A registry that answered `/v2/` anonymously asked for authentication on a
    /// repository (quay.io does): the host is set up again with that challenge and the
    /// operation redone once (see `retry.rs`).
    #[error("registry {registry} asks for authentication on this repository")]
    Challenged { registry: String },
    /// A token was refused as invalid (RFC 6750 `invalid_token`: expired early, revoked,
    /// or not yet valid for the registry's clock): the host's tokens are dropped and the
    /// operation redone once with a new one (see `retry.rs`); shown when that one is
    /// refused too.
    #[error(
        "registry {registry} refused its token as invalid or expired, and a new one too: check \
         that this machine's clock agrees with the registry's and its token service's"
    )]
    TokenRefused { registry: String },
    /// `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `BLOB_UNKNOWN`, or a plain 404.
    #[error("{reference}: not found ({reason})")]
    NotFound { reference: String, reason: String },
    /// 408, 429 or 5xx: the registry is there but cannot serve us right now (retried,
    /// after `retry_after` when the registry sent a `Retry-After` header).
    #[error("registry {registry} answered {status}: {reason}")]
    Server {
        registry: String,
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Any other registry error: the registry's code and message, bounded.
    #[error("registry {registry} refused the request: {reason}")]
    Protocol { registry: String, reason: String },
    /// Content did not hash to what it was addressed by.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A blob was larger than the caller allowed (configs are fetched into memory).
    #[error("{what}: larger than the {limit} bytes allowed")]
    TooLarge { what: String, limit: u64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `--ca-cert` or certs.d file that cannot be used.
    #[error("CA certificate {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    /// An unreadable credentials file or a failing credential helper. `path` names the file
    /// or helper; `reason` never holds a secret.
    #[error("credentials from {path}: {reason}")]
    Credentials { path: String, reason: String },
}

/// Coarse classes of [`RegistryError`], for exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unreachable, timed out, 5xx: "registry/network error".
    Network,
    /// Untrusted or invalid certificate, or no TLS where it was required.
    Tls,
    /// Credentials missing, wrong or insufficient.
    Auth,
    /// The image, repository or blob does not exist.
    NotFound,
    /// The registry refused or mangled the content (protocol error, digest mismatch).
    Registry,
    /// Local files: cache I/O, CA files, credential files and helpers.
    Local,
}

impl RegistryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Network { .. } | RegistryError::Server { .. } => ErrorKind::Network,
            RegistryError::Tls { .. } | RegistryError::ClientCert { .. } => ErrorKind::Tls,
            RegistryError::Auth { .. }
            | RegistryError::Challenged { .. }
            | RegistryError::TokenRefused { .. } => ErrorKind::Auth,
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::Protocol { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::TooLarge { .. } => ErrorKind::Registry,
            RegistryError::Io { .. }
            | RegistryError::CaCert { .. }
            | RegistryError::Credentials { .. } => ErrorKind::Local,
        }
    }

    /// The message without remedies, for retry warnings (the final error has them).
    pub fn summary(&self) -> String {
        match self {
            RegistryError::Network {
                registry, reason, ..
            } => format!("cannot reach registry {registry}: {reason}"),
            other => other.to_string(),
        }
    }

    /// Whether retrying the whole operation may succeed (resets, timeouts, 408/429/5xx).
    /// Authentication failures never are: a wrong password fails once.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Network { transient, .. } => *transient,
            RegistryError::Server { .. } => true,
            _ => false,
        }
    }

    /// The wait a registry asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What to check when a host cannot be reached; plain HTTP needs a flag only off loopback.
fn network_hint(registry: &str, transient: bool) -> String {
    // Only a name that does not resolve is not retried: the name is what to check.
    if !transient {
        let host = match registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => registry,
        };
        return format!("check the host name {host:?}: DNS or /etc/hosts does not know it");
    }
    if crate::image::reference::is_loopback_host(registry) {
        "check the address and that the registry is running".to_string()
    } else {
        format!(
            "check the address and that the registry is running; a registry that only speaks \
             plain HTTP needs --insecure-registry {registry}"
        )
    }
}

/// Cuts registry-supplied text to [`MAX_REASON`] characters on one line.
pub(crate) fn bounded(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    if one_line.chars().count() <= MAX_REASON {
        one_line.to_string()
    } else {
        let cut: String = one_line.chars().take(MAX_REASON).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_message_names_remedies() {
        let e = RegistryError::Tls {
            registry: "myregistry.com:5000".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("--ca-cert"));
        assert!(msg.contains("/etc/docker/certs.d/myregistry.com:5000/ca.crt"));
        assert!(msg.contains("--insecure-registry myregistry.com:5000"));
        assert_eq!(e.kind(), ErrorKind::Tls);
    }

    #[test]
    fn network_hints_fit_the_failure() {
        let unknown = RegistryError::Network {
            registry: "myregistry.example:5000".into(),
            reason: "dns error".into(),
            transient: false,
        }
        .to_string();
        assert!(
            unknown.contains("check the host name \"myregistry.example\""),
            "{unknown}"
        );
        assert!(!unknown.contains("--insecure-registry"), "{unknown}");
        let refused = RegistryError::Network {
            registry: "myregistry.example:5000".into(),
            reason: "connection refused".into(),
            transient: true,
        }
        .to_string();
        assert!(
            refused.contains("--insecure-registry myregistry.example:5000"),
            "{refused}"
        );
    }
}
