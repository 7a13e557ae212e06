//! Choosing HTTPS or plain HTTP for a host by probing `GET /v2/` (the distribution spec's
//! "API version check", which also carries the `WWW-Authenticate` challenge).
//!
//! * Loopback hosts (`localhost`, 127.0.0.0/8, ::1) may use plain HTTP without a flag
//!   (Docker's rule): try HTTP first; if the server answers that it speaks HTTPS (Go's and
//!   nginx's 400 "HTTP request to an HTTPS server") or drops the connection, use HTTPS with
//!   normal verification — so a self-signed loopback registry is still refused unless
//!   trusted.
//! * `--insecure-registry` hosts: HTTPS without verification, falling back to HTTP on a
//!   TLS or connect failure, never on a timeout (Docker's `insecure-registries` behaviour).
//! * Everything else: verified HTTPS only; a failure is reported, never downgraded.

use super::RegistryError;
use super::challenge::Challenge;
use super::classify::{self, Context, Transport};
use super::tls::Der;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// What the probe found out.
#[derive(Clone, Debug)]
pub struct Probed {
    pub scheme: Scheme,
    pub challenge: Challenge,
    /// The host's certificate could only be matched against a pinned one (see
    /// [`pinned_probe`]); later connections cannot be verified.
    pub pinned: bool,
}

/// The order in which schemes are tried for a host.
pub fn plan(loopback: bool, insecure: bool) -> &'static [Scheme] {
    match (loopback, insecure) {
        (true, _) => &[Scheme::Http, Scheme::Https],
        (false, true) => &[Scheme::Https, Scheme::Http],
        (false, false) => &[Scheme::Https],
    }
}

/// Probes `url_host` (`host[:port]` as used in URLs) with `http` (a client carrying the
/// host's TLS trust). `registry` names the host in errors. `pins` are the certificates the
/// user trusts for the host and `identity` its client certificate (see [`pinned_probe`]).
/// A 408/429/5xx answer is a (retried) server error, not a reason to change scheme.
pub async fn probe(
    http: &reqwest::Client,
    registry: &str,
    url_host: &str,
    loopback: bool,
    insecure: bool,
    pins: &[Der],
    identity: Option<&[u8]>,
) -> Result<Probed, RegistryError> {
    let ctx = Context {
        registry,
        subject: registry,
    };
    let explicit_port = has_explicit_port(url_host);
    let order = plan(loopback, insecure);
    let mut first_error: Option<RegistryError> = None;
    for (i, &scheme) in order.iter().enumerate() {
        let last = i + 1 == order.len();
        let url = format!("{}://{url_host}/v2/", scheme.as_str());
        match http.get(&url).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let challenge = Challenge::parse(
                    resp.headers()
                        .get_all(reqwest::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                );
                if matches!(status, 408 | 429 | 500..=599) {
                    return Err(classify::from_response(resp, &ctx).await);
                }
                // Distribution spec, "Determining support": a registry answers `/v2/`
                // with 200 or 401; 404 means no registry API there (a web server on the
                // port, a wrong port).
                if matches!(status, 404 | 405) {
                    return Err(RegistryError::Protocol {
                        registry: registry.to_string(),
                        reason: format!(
                            "{url} answered {status}: this is not a container registry (a registry answers 200 or 401 there); check the host and port"
                        ),
                    });
                }
                if scheme == Scheme::Http && status == 400 {
                    let body = resp.text().await.unwrap_or_default();
                    if says_use_https(&body) {
                        if !last {
                            continue;
                        }
                        // HTTPS was tried first and failed: that failure is the one to fix.
                        return Err(first_error.unwrap_or_else(|| RegistryError::Protocol {
                            registry: registry.to_string(),
                            reason: "the registry only speaks HTTPS".into(),
                        }));
                    }
                }
                return Ok(Probed {
                    scheme,
                    challenge,
                    pinned: false,
                });
            }
            Err(e) => {
                let chain = classify::error_chain(&e);
                let class = classify::transport_class(&e, &chain);
                let err = classify::from_reqwest(&e, &ctx);
                if scheme == Scheme::Https
                    && chain.iter().any(|m| m.contains("CaUsedAsEndEntity"))
                    && let Some(p) = pinned_probe(url_host, pins, identity).await
                {
                    return Ok(p);
                }
                let fall_back = !last
                    && match (scheme, class) {
                        // Never downgrade on a timeout: a slow HTTPS registry is not an
                        // HTTP one, and the retry will try HTTPS again.
                        (_, Transport::Timeout | Transport::Dns) => false,
                        (Scheme::Https, Transport::Tls | Transport::Connect) => true,
                        // HTTP to a TLS port: the server hangs up or answers garbage.
                        (Scheme::Http, Transport::Other | Transport::Tls) => true,
                        // Nothing listens on :80; HTTPS is on :443, a different port.
                        (Scheme::Http, Transport::Connect) => !explicit_port,
                        (Scheme::Https, Transport::Other) => false,
                    };
                if !fall_back {
                    // A certificate problem on the last try is the actionable one.
                    return Err(match (first_error, &err) {
                        (_, RegistryError::Tls { .. } | RegistryError::ClientCert { .. })
                        | (None, _) => err,
                        (Some(first), _) => first,
                    });
                }
                first_error.get_or_insert(err);
            }
        }
    }
    // Only reached when every scheme said "use the other one".
    Err(first_error.unwrap_or_else(|| RegistryError::Protocol {
        registry: registry.to_string(),
        reason: "the registry answered neither HTTP nor HTTPS on /v2/".into(),
    }))
}

/// A server whose certificate is a self-signed CA certificate (what `openssl req -x509`
/// makes by default, and what Docker's own registry guide uses) cannot be verified by
/// rustls/webpki even when that very certificate is trusted: webpki refuses a CA as end
/// entity (`CaUsedAsEndEntity`; declined upstream in rustls/webpki#205), while Go and
/// OpenSSL accept it. So that such registries work with `--ca-cert`/certs.d as they do
/// with Docker, fetch the certificate without verification and accept the host only if it
/// is byte-for-byte one the user trusts. A custom rustls verifier would need rustls as a
/// direct dependency (reqwest's `use_preconfigured_tls`), so the connections after this
/// check are made without verification (the caller warns).
async fn pinned_probe(url_host: &str, pins: &[Der], identity: Option<&[u8]>) -> Option<Probed> {
    if pins.is_empty() {
        return None;
    }
    let mut builder = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .connect_timeout(super::client::CONNECT_TIMEOUT)
        .read_timeout(std::time::Duration::from_secs(30));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem).ok()?);
    }
    let client = builder.build().ok()?;
    let resp = client
        .get(format!("https://{url_host}/v2/"))
        .send()
        .await
        .ok()?;
    let leaf = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()?;
    if !pins.iter().any(|p| p.as_slice() == leaf) {
        return None;
    }
    let challenge = Challenge::parse(
        resp.headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    Some(Probed {
        scheme: Scheme::Https,
        challenge,
        pinned: true,
    })
}

/// Go's `net/http` ("Client sent an HTTP request to an HTTPS server.") and nginx ("The
/// plain HTTP request was sent to HTTPS port").
fn says_use_https(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("https server") || b.contains("https port") || b.contains("to https")
}

fn has_explicit_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        Some((h, p)) => {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(plan(true, false), &[Scheme::Http, Scheme::Https]);
        assert_eq!(plan(false, true), &[Scheme::Https, Scheme::Http]);
        assert_eq!(plan(false, false), &[Scheme::Https]);
    }

    #[test]
    fn https_hints() {
        assert!(says_use_https(
            "Client sent an HTTP request to an HTTPS server.\n"
        ));
        assert!(says_use_https(
            "<h1>400 The plain HTTP request was sent to HTTPS port</h1>"
        ));
        assert!(!says_use_https(r#"{"errors":[{"code":"UNSUPPORTED"}]}"#));
    }

    #[test]
    fn ports() {
        assert!(has_explicit_port("localhost:5000"));
        assert!(has_explicit_port("[::1]:5000"));
        assert!(!has_explicit_port("[::1]"));
        assert!(!has_explicit_port("localhost"));
    }

    /// A TCP listener that answers every connection with `reply` and hangs up.
    async fn fake_server(reply: &'static [u8]) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn loopback_http_registry() {
        let addr = fake_server(
            b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let http = reqwest::Client::new();
        let p = probe(&http, "x", &addr.to_string(), true, false, &[], None)
            .await
            .unwrap();
        assert_eq!(p.scheme, Scheme::Http);
        assert_eq!(p.challenge, Challenge::Basic);
    }

    #[tokio::test]
    async fn loopback_tls_port_switches_to_https() {
        // Answers HTTP with Go's hint and TLS with garbage: the HTTPS attempt fails with a
        // TLS error, which is what gets reported (no silent downgrade).
        let addr = fake_server(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )
        .await;
        let http = reqwest::Client::new();
        let err = probe(&http, "x", &addr.to_string(), true, false, &[], None)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Tls { .. }), "{err}");
    }

    #[tokio::test]
    async fn unavailable_is_a_retryable_server_error_with_its_wait() {
        let addr = fake_server(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let http = reqwest::Client::new();
        let err = probe(&http, "x", &addr.to_string(), true, false, &[], None)
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn a_web_server_is_not_a_registry() {
        let addr = fake_server(
            b"HTTP/1.0 404 File not found\r\nContent-Type: text/html\r\n\r\n<!DOCTYPE HTML><html>nope</html>",
        )
        .await;
        let http = reqwest::Client::new();
        let err = probe(&http, "x", &addr.to_string(), true, false, &[], None)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("answered 404: this is not a container registry"),
            "{text}"
        );
        assert!(!text.contains("DOCTYPE"), "{text}");
    }

    #[tokio::test]
    async fn refused_is_a_network_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let http = reqwest::Client::new();
        let err = probe(&http, "x", &addr.to_string(), true, false, &[], None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::Network {
                    transient: true,
                    ..
                }
            ),
            "{err}"
        );
    }
}
