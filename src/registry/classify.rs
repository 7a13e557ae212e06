//! Maps failed HTTP exchanges onto [`RegistryError`]: statuses and OCI error envelopes
//! (distribution-spec "Error Codes"), `Retry-After`, and transport failures (TLS vs
//! connect vs timeout) found by walking the error's `source()` chain.

use serde::Deserialize;

use super::RegistryError;
use super::error::bounded;
use super::retry_after::parse_retry_after;

/// What a request was about, to name things in the error.
pub(crate) struct Context<'a> {
    /// The registry host as the user wrote it.
    pub registry: &'a str,
    /// What was asked for (a reference, `repo@digest`), for not-found messages.
    pub subject: &'a str,
}

/// Most of an error body we read: envelopes are small, HTML error pages are not useful.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The distribution-spec error envelope: `{"errors":[{"code":…,"message":…}]}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    errors: Vec<EnvelopeError>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Turns a non-success response into an error: reads at most [`MAX_ERROR_BODY`] bytes of
/// the body, and keeps `Retry-After` for 408/429/5xx.
pub(crate) async fn from_response(resp: reqwest::Response, ctx: &Context<'_>) -> RegistryError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = read_bounded(resp).await;
    let mut err = from_status(status, &body, ctx);
    if let RegistryError::Server { retry_after: r, .. } = &mut err {
        *r = retry_after;
    }
    err
}

async fn read_bounded(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= MAX_ERROR_BODY {
            buf.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Maps an HTTP status plus body (which may be an OCI error envelope) onto our classes.
pub(crate) fn from_status(code: u16, body: &str, ctx: &Context<'_>) -> RegistryError {
    if let Ok(envelope) = serde_json::from_str::<Envelope>(body)
        && !envelope.errors.is_empty()
    {
        return from_envelope(&envelope, code, ctx);
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
            retry_after: None,
        },
        _ => protocol(ctx, reason),
    }
}

fn from_envelope(envelope: &Envelope, status: u16, ctx: &Context<'_>) -> RegistryError {
    let reason = bounded(
        &envelope
            .errors
            .iter()
            .map(|e| {
                let code = if e.code.is_empty() {
                    "UNKNOWN"
                } else {
                    &e.code
                };
                if e.message.is_empty() {
                    code.to_string()
                } else {
                    format!("{code}: {}", e.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    let first = envelope
        .errors
        .first()
        .map(|e| e.code.to_ascii_uppercase())
        .unwrap_or_default();
    let reason = match hint(&first) {
        Some(h) => format!("{reason} — {h}"),
        None => reason,
    };
    match first.as_str() {
        "UNAUTHORIZED" | "DENIED" => auth(ctx, reason),
        "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND" => {
            RegistryError::NotFound {
                reference: ctx.subject.to_string(),
                reason,
            }
        }
        "TOOMANYREQUESTS" => server(ctx, status, reason),
        _ => match status {
            408 | 429 | 500..=599 => server(ctx, status, reason),
            401 | 403 => auth(ctx, reason),
            _ => protocol(ctx, reason),
        },
    }
}

/// What to do about a distribution-spec error code, when there is something to say.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "DENIED" => "the account may not pull or push this repository",
        "NAME_UNKNOWN" => {
            "check the repository name; some registries need the repository created first"
        }
        "MANIFEST_UNKNOWN" => "check the tag or digest",
        "NAME_INVALID" | "TAG_INVALID" => "check the image reference",
        "MANIFEST_INVALID" | "MANIFEST_BLOB_UNKNOWN" => {
            "the registry does not accept this manifest (an old registry may not support \
             OCI media types)"
        }
        "BLOB_UPLOAD_INVALID" | "BLOB_UPLOAD_UNKNOWN" | "DIGEST_INVALID" | "SIZE_INVALID" => {
            "the upload was refused; run the build again"
        }
        "UNSUPPORTED" => "the registry does not support this operation",
        "TOOMANYREQUESTS" => "rate-limited: wait, or log in for a higher limit",
        _ => return None,
    })
}

fn server(ctx: &Context<'_>, status: u16, reason: String) -> RegistryError {
    RegistryError::Server {
        registry: ctx.registry.to_string(),
        status,
        reason,
        retry_after: None,
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
        Transport::Tls if wants_client_certificate(&chain) => RegistryError::ClientCert {
            registry: ctx.registry.to_string(),
            reason,
        },
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

/// A failure while reading or writing a body: the transport error inside, if any.
pub(crate) fn from_io(e: &std::io::Error, ctx: &Context<'_>) -> RegistryError {
    if let Some(re) = e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()) {
        return from_reqwest(re, ctx);
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

/// Whether the server refused the handshake over our client certificate (none sent, or
/// one it does not accept): rustls reports the server's alert.
pub(crate) fn wants_client_certificate(chain: &[String]) -> bool {
    chain.iter().any(|m| {
        m.contains("received fatal alert: BadCertificate")
            || m.contains("received fatal alert: CertificateRequired")
            || m.contains("received fatal alert: UnknownCA")
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
#[path = "classify_tests.rs"]
mod tests;
