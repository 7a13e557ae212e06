//! TLS that accepts exactly the certificates the user trusts for a host, for registries
//! whose server certificate is itself a self-signed CA certificate (what `openssl req
//! -x509` makes by default, and Docker's own registry guide uses). webpki refuses a CA
//! certificate as the end entity (`CaUsedAsEndEntity`, declined upstream in
//! rustls/webpki#205) even when that very certificate is trusted; Go and OpenSSL accept
//! it. Here the leaf must be byte-for-byte one of the trusted certificates, and the
//! handshake signature is still checked, so only the holder of its key passes — on every
//! connection, not just the first.

use std::sync::Arc;

use rustls::CertificateError;
use rustls::client::danger::ServerCertVerified;
use rustls::pki_types::CertificateDer;

use super::tls::Der;
use super::tls_config::CertCheck;

/// A rustls client config that trusts exactly `pins` as server certificates, presenting
/// `identity` (PEM certificate chain and key) when given.
pub fn config(pins: &[Der], identity: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    super::tls_config::config(provider, CertCheck::Pinned(pins.to_vec()), identity)
}

/// The server certificate passes when it is byte for byte one of `pins`.
pub(super) fn check(
    pins: &[Der],
    end_entity: &CertificateDer<'_>,
) -> Result<ServerCertVerified, rustls::Error> {
    if pins.iter().any(|p| p.as_slice() == end_entity.as_ref()) {
        Ok(ServerCertVerified::assertion())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }
}
