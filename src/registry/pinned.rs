//! TLS that accepts exactly the certificates the user trusts for a host, for registries
//! whose server certificate is itself a self-signed CA certificate (what `openssl req
//! -x509` makes by default, and Docker's own registry guide uses). webpki refuses a CA
//! certificate as the end entity (`CaUsedAsEndEntity`, declined upstream in
//! rustls/webpki#205) even when that very certificate is trusted; Go and OpenSSL accept
//! it. Here the leaf must be byte-for-byte one of the trusted certificates, and the
//! handshake signature is still checked, so only the holder of its key passes — on every
//! connection, not just the first.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::tls::Der;

/// A rustls client config that trusts exactly `pins` as server certificates, presenting
/// `identity` (PEM certificate chain and key) when given.
pub fn config(pins: &[Der], identity: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Pinned {
        pins: pins.to_vec(),
        algorithms: provider.signature_verification_algorithms,
    });
    super::system_trust::client_config(provider, verifier, identity)
}

#[derive(Debug)]
struct Pinned {
    pins: Vec<Der>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pins
            .iter()
            .any(|p| p.as_slice() == end_entity.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
