//! Maps `oci-client` and `reqwest` failures onto [`RegistryError`]: HTTP statuses and
//! OCI error envelopes (distribution-spec "Error Codes"), and transport failures (TLS vs
//! connect vs timeout) found by walking the error's `source()` chain.

use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};

use super::RegistryError;
use super::error::bounded;

/// What an `oci-client` call was about, to name things in the error.
pub(crate) struct Context<'a> {
    /// The registry host as the user wrote it.
    pub registry: &'a str,
    /// What was asked for (a reference, `repo@digest`), for not-found messages.
    pub subject: &'a str,
}

/// Maps an `oci-client` failure onto our classes.
pub(crate) fn classify(err: OciDistributionError, ctx: &Context<'_>) -> RegistryError {
    use OciDistributionError as E;
    match err {
        E::AuthenticationFailure(body) => {
            auth(ctx, format!("token request refused: {}", bounded(&body)))
        }
        E::UnauthorizedError { .. } => auth(ctx, "the registry answered 401 Unauthorized".into()),
        E::RegistryError { envelope, .. } => from_envelope(&envelope, None, ctx),
        E::ServerError { code, message, .. } => from_status(code, &message, ctx),
        E::RequestError(e) => from_reqwest(&e, ctx),
        E::IoError(e) => from_io(&e, ctx),
        E::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            RegistryError::DigestMismatch {
                what: ctx.subject.to_string(),
                expected,
                actual,
            }
        }
        other => protocol(ctx, bounded(&other.to_string())),
    }
}

/// Maps an HTTP status plus body (which may be an OCI error envelope) onto our classes.
pub(crate) fn from_status(code: u16, body: &str, ctx: &Context<'_>) -> RegistryError {
    if let Ok(envelope) = serde_json::from_str::<OciEnvelope>(body)
        && !envelope.errors.is_empty()
    {
        return from_envelope(&envelope, Some(code), ctx);
    }
    let text = bounded(body.trim());
    let reason = if text.is_empty() {
        match code {
            401 => "the registry requires authentication (HTTP 401)".to_string(),
            403 => "access denied (HTTP 403)".to_string(),
            404 => "HTTP 404".to_string(),
            _ => format!("HTTP {code}"),
        }
    } else {
        format!("HTTP {code}: {text}")
    };
    match code {
        401 | 403 => auth(ctx, reason),
        404 => RegistryError::NotFound {
            reference: ctx.subject.to_string(),
            reason,
        },
        408 | 429 | 500..=599 => RegistryError::Server {
            registry: ctx.registry.to_string(),
            status: code,
            reason: if text.is_empty() {
                status_text(code).into()
            } else {
                text
            },
        },
        _ => protocol(ctx, reason),
    }
}

fn from_envelope(envelope: &OciEnvelope, status: Option<u16>, ctx: &Context<'_>) -> RegistryError {
    let reason = bounded(
        &envelope
            .errors
            .iter()
            .map(|e| {
                let code = serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "UNKNOWN".into());
                if e.message.is_empty() {
                    code
                } else {
                    format!("{code}: {}", e.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    let first = envelope.errors.first().map(|e| &e.code);
    match first {
        Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => auth(ctx, reason),
        Some(
            OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown
            | OciErrorCode::BlobUnknown
            | OciErrorCode::NotFound,
        ) => RegistryError::NotFound {
            reference: ctx.subject.to_string(),
            reason,
        },
        Some(OciErrorCode::Toomanyrequests) => RegistryError::Server {
            registry: ctx.registry.to_string(),
            status: status.unwrap_or(429),
            reason,
        },
        _ => match status {
            Some(code @ (408 | 429 | 500..=599)) => RegistryError::Server {
                registry: ctx.registry.to_string(),
                status: code,
                reason,
            },
            _ => protocol(ctx, reason),
        },
    }
}

/// Transport failures: tell TLS from connection problems by walking the `source()` chain
/// (reqwest → hyper-util → io::Error → rustls::Error), since rustls is not ours to downcast.
pub(crate) fn from_reqwest(e: &reqwest::Error, ctx: &Context<'_>) -> RegistryError {
    if let Some(status) = e.status() {
        return from_status(status.as_u16(), "", ctx);
    }
    let chain = error_chain(e);
    let reason = transport_reason(e, &chain);
    match transport_class(e, &chain) {
        Transport::Tls => RegistryError::Tls {
            registry: ctx.registry.to_string(),
            reason: if is_certificate_failure(&chain) {
                reason
            } else {
                format!("{reason} (the server may not speak TLS on this port)")
            },
        },
        Transport::Dns => network(ctx, reason, false),
        Transport::Timeout | Transport::Connect | Transport::Other => network(ctx, reason, true),
    }
}

fn from_io(e: &std::io::Error, ctx: &Context<'_>) -> RegistryError {
    // Streams wrap their failures into io::Error: a digest check at the end of a pulled
    // blob, or the transport error of the body.
    if let Some(inner) = e.get_ref() {
        if let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) =
            inner.downcast_ref::<oci_client::errors::DigestError>()
        {
            return RegistryError::DigestMismatch {
                what: ctx.subject.to_string(),
                expected: expected.clone(),
                actual: actual.clone(),
            };
        }
        if let Some(re) = inner.downcast_ref::<reqwest::Error>() {
            return from_reqwest(re, ctx);
        }
    }
    network(ctx, bounded(&e.to_string()), true)
}

/// How a request failed below HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TLS handshake or certificate failure.
    Tls,
    Dns,
    Timeout,
    /// Connection refused / unreachable.
    Connect,
    /// Reset, EOF, malformed response.
    Other,
}

pub(crate) fn transport_class(e: &reqwest::Error, chain: &[String]) -> Transport {
    if e.is_timeout() {
        Transport::Timeout
    } else if is_tls_failure(chain) {
        Transport::Tls
    } else if e.is_dns() || chain.iter().any(|m| m.contains("dns error")) {
        Transport::Dns
    } else if e.is_connect() {
        Transport::Connect
    } else {
        Transport::Other
    }
}

/// Whether the chain shows a TLS failure; rustls' messages are stable ("invalid peer
/// certificate: …", "received corrupt message …", "received fatal alert: …").
pub(crate) fn is_tls_failure(chain: &[String]) -> bool {
    chain.iter().any(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("certificate")
            || m.contains("tls")
            || m.contains("handshake")
            || m.contains("received corrupt message")
            || m.contains("received fatal alert")
            || m.contains("peer is incompatible")
            || m.contains("peer misbehaved")
    })
}

/// Whether the TLS failure is about the certificate (as opposed to the peer not speaking TLS).
pub(crate) fn is_certificate_failure(chain: &[String]) -> bool {
    chain
        .iter()
        .any(|m| m.to_ascii_lowercase().contains("certificate"))
}

/// The messages of `e` and all its sources, outermost first.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

/// A short reason: the innermost message says what happened ("Connection refused (os
/// error 111)", "invalid peer certificate: UnknownIssuer"), without URLs.
fn transport_reason(e: &reqwest::Error, chain: &[String]) -> String {
    let innermost = chain.last().cloned().unwrap_or_default();
    let reason = if e.is_timeout() {
        "timed out".to_string()
    } else if innermost.is_empty() {
        e.to_string()
    } else {
        innermost
    };
    bounded(&reason)
}

fn auth(ctx: &Context<'_>, reason: String) -> RegistryError {
    RegistryError::Auth {
        registry: ctx.registry.to_string(),
        reason,
    }
}

fn protocol(ctx: &Context<'_>, reason: String) -> RegistryError {
    RegistryError::Protocol {
        registry: ctx.registry.to_string(),
        reason,
    }
}

pub(crate) fn network(ctx: &Context<'_>, reason: String, transient: bool) -> RegistryError {
    RegistryError::Network {
        registry: ctx.registry.to_string(),
        reason,
        transient,
    }
}

fn status_text(code: u16) -> &'static str {
    match code {
        408 => "request timeout",
        429 => "too many requests",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "server error",
    }
}

#[cfg(test)]
mod tests {
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
        let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
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
    fn oci_client_errors() {
        let e = classify(
            OciDistributionError::UnauthorizedError {
                url: "http://x/v2/".into(),
            },
            &ctx(),
        );
        assert_eq!(e.kind(), ErrorKind::Auth);
        let e = classify(
            OciDistributionError::ServerError {
                code: 500,
                url: "u".into(),
                message: "boom".into(),
            },
            &ctx(),
        );
        assert!(e.is_transient());
        let e = classify(
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
                expected: "sha256:a".into(),
                actual: "sha256:b".into(),
            }),
            &ctx(),
        );
        assert!(matches!(e, RegistryError::DigestMismatch { .. }));
        let io = std::io::Error::other(oci_client::errors::DigestError::VerificationError {
            expected: "sha256:a".into(),
            actual: "sha256:b".into(),
        });
        assert!(matches!(
            classify(OciDistributionError::IoError(io), &ctx()),
            RegistryError::DigestMismatch { .. }
        ));
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
    }

    #[test]
    fn messages_are_bounded_and_single_line() {
        let long = "x".repeat(1000);
        let e = from_status(400, &format!("line1\n{long}"), &ctx());
        let msg = e.to_string();
        assert!(!msg.contains('\n'));
        assert!(msg.len() < 600, "{}", msg.len());
    }
}
