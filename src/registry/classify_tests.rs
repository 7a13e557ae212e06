//! Tests of `classify.rs`: statuses, error envelopes, transport failures.

use super::*;
use crate::registry::ErrorKind;

fn ctx() -> Context<'static> {
    Context {
        registry: "reg.example:5000",
        subject: "reg.example:5000/app:v1",
    }
}

#[test]
fn envelope_codes() {
    let body =
        r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
    let e = from_status(403, body, &ctx());
    assert_eq!(e.kind(), ErrorKind::Auth);
    let msg = e.to_string();
    assert!(msg.contains("DENIED: requested access"), "{msg}");
    assert!(msg.contains("ocibuild login reg.example:5000"), "{msg}");

    let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
    assert_eq!(from_status(404, body, &ctx()).kind(), ErrorKind::NotFound);
    let body = r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#;
    assert!(matches!(
        from_status(404, body, &ctx()),
        RegistryError::NotFound { .. }
    ));

    let body =
        r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}"#;
    let e = from_status(400, body, &ctx());
    assert!(matches!(e, RegistryError::Protocol { .. }));
    assert!(e.to_string().contains("MANIFEST_INVALID: manifest invalid"));
    assert!(!e.is_transient());

    let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
    assert!(from_status(429, body, &ctx()).is_transient());
}

#[test]
fn plain_statuses() {
    assert!(from_status(503, "", &ctx()).is_transient());
    assert!(from_status(408, "", &ctx()).is_transient());
    assert!(from_status(502, "<html>bad gateway</html>", &ctx()).is_transient());
    assert_eq!(from_status(401, "", &ctx()).kind(), ErrorKind::Auth);
    assert!(!from_status(401, "", &ctx()).is_transient());
    assert_eq!(from_status(404, "", &ctx()).kind(), ErrorKind::NotFound);
    assert_eq!(from_status(400, "nope", &ctx()).kind(), ErrorKind::Registry);
}

#[test]
fn io_errors_are_transient_network_errors() {
    let e = from_io(&std::io::Error::other("connection reset"), &ctx());
    assert!(e.is_transient(), "{e}");
    assert_eq!(e.kind(), ErrorKind::Network);
}

#[test]
fn tls_detection() {
    let chain = |s: &str| vec!["error sending request".to_string(), s.to_string()];
    assert!(is_tls_failure(&chain(
        "invalid peer certificate: UnknownIssuer"
    )));
    assert!(is_certificate_failure(&chain(
        "invalid peer certificate: UnknownIssuer"
    )));
    assert!(is_tls_failure(&chain(
        "received corrupt message of type InvalidContentType"
    )));
    assert!(!is_certificate_failure(&chain(
        "received corrupt message of type InvalidContentType"
    )));
    assert!(!is_tls_failure(&chain("Connection refused (os error 111)")));
    assert!(wants_client_certificate(&chain(
        "received fatal alert: CertificateRequired"
    )));
    assert!(!wants_client_certificate(&chain(
        "invalid peer certificate: UnknownIssuer"
    )));
}

#[test]
fn messages_are_bounded_and_single_line() {
    let long = "x".repeat(1000);
    let e = from_status(400, &format!("line1\n{long}"), &ctx());
    let msg = e.to_string();
    assert!(!msg.contains('\n'));
    assert!(msg.len() < 600, "{}", msg.len());
}
