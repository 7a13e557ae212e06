//! The system's trust store (plus a host's extra CA certificates) as a rustls verifier
//! that is loaded when a server certificate is first checked, once per process. Loading
//! and parsing `/etc/ssl/certs` costs ~20 ms of CPU, and reqwest's own set-up did it for
//! every client (two or three per registry) even when the registry speaks plain HTTP.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls_platform_verifier::Verifier;

use super::tls::Der;
use super::tls_config::CertCheck;

type Loaded = Result<Arc<Verifier>, String>;

/// The verifiers loaded in this process, by their extra roots (none: the system store
/// alone), shared by every client with the same roots.
static LOADED: Mutex<Vec<(Vec<Der>, Loaded)>> = Mutex::new(Vec::new());

/// The verifier for `extra` roots, loaded on first use (under the lock, so two clients
/// never load the same store at once).
fn load(extra: &[Der], provider: &Arc<CryptoProvider>) -> Loaded {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, l)) = loaded.iter().find(|(e, _)| e.as_slice() == extra) {
        return l.clone();
    }
    let v = if extra.is_empty() {
        Verifier::new(provider.clone())
    } else {
        let roots = extra.iter().map(|d| CertificateDer::from(d.clone()));
        Verifier::new_with_extra_roots(roots, provider.clone())
    };
    let l = v
        .map(Arc::new)
        .map_err(|e| format!("cannot load the CA certificates: {e}"));
    loaded.push((extra.to_vec(), l.clone()));
    l
}

/// A rustls client config that verifies servers against the system's store plus `extra`
/// CA certificates, presenting `identity` (PEM certificate chain and key) when given.
pub fn config(extra: &[Der], identity: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = LazyRoots {
        extra: extra.to_vec(),
        provider: provider.clone(),
        loaded: OnceLock::new(),
    };
    super::tls_config::config(provider, CertCheck::System(roots), identity)
}

/// A client's roots: its extra CA certificates, and the verifier once loaded.
#[derive(Debug)]
pub(super) struct LazyRoots {
    extra: Vec<Der>,
    provider: Arc<CryptoProvider>,
    /// This client's verifier once loaded (or shared from another client).
    loaded: OnceLock<Loaded>,
}

impl LazyRoots {
    /// The verifier, loaded (or shared from another client) on first use.
    pub(super) fn get(&self) -> Result<&Verifier, rustls::Error> {
        self.loaded
            .get_or_init(|| load(&self.extra, &self.provider))
            .as_deref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy(extra: Vec<Der>) -> LazyRoots {
        LazyRoots {
            extra,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            loaded: OnceLock::new(),
        }
    }

    #[test]
    fn roots_are_loaded_on_first_use_and_bad_ones_are_named() {
        assert!(config(&[], None).is_ok());
        let v = lazy(vec![b"not a certificate".to_vec()]);
        assert!(
            v.loaded.get().is_none(),
            "nothing loaded before a certificate is checked"
        );
        let err = v.get().unwrap_err().to_string();
        assert!(err.contains("cannot load the CA certificates"), "{err}");
        assert!(v.loaded.get().is_some());
        // Another client with the same roots shares what was loaded.
        let w = lazy(vec![b"not a certificate".to_vec()]);
        assert!(w.get().is_err());
        let shared = LOADED.lock().unwrap();
        assert_eq!(shared.iter().filter(|(e, _)| e == &w.extra).count(), 1);
    }
}
