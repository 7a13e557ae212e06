//! Requests to a registry host: URLs under `/v2/`, `Location` headers resolved against the
//! request that returned them (relative or absolute, possibly on another host), the
//! `Authorization` header only for the registry's own origin, and failed answers turned
//! into errors that keep `Retry-After`.

use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, Url};

use super::RegistryError;
use super::challenge::{self, Challenge};
use super::classify;
use super::client::Host;

impl Host {
    /// `path` under this host's `/v2/` (e.g. `library/alpine/manifests/3.20`).
    pub(super) fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| self.protocol(format!("bad URL {path:?}: {e}")))
    }

    /// Whether `url` is on this registry's own origin (scheme, host and port). Only such
    /// requests carry credentials: an upload `Location` on another host (storage, a
    /// different front end) gets none.
    pub(super) fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// The `Location` of `resp`, resolved against the URL it answered (so relative and
    /// absolute forms both work). Missing or unusable is a protocol error.
    pub(super) fn location(&self, resp: &Response) -> Result<Url, RegistryError> {
        let value = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.protocol(format!(
                    "{} answered {} without a Location header",
                    resp.url().path(),
                    resp.status().as_u16()
                ))
            })?;
        resp.url()
            .join(value.trim())
            .map_err(|e| self.protocol(format!("unusable Location {value:?}: {e}")))
    }

    /// A request to `url` for repository `repo`, with this host's credentials (a token for
    /// pull or push, or Basic) when `url` is on the registry's own origin. GETs follow
    /// redirects; nothing else does.
    pub(super) async fn request(
        &self,
        method: Method,
        url: Url,
        repo: &str,
        push: bool,
    ) -> Result<RequestBuilder, RegistryError> {
        let header = if self.same_origin(&url) {
            self.auth_header(repo, push).await?
        } else {
            None
        };
        let client = if method == Method::GET {
            &self.http_follow
        } else {
            &self.http
        };
        let mut rb = client.request(method, url);
        if let Some(h) = header {
            rb = rb.header(AUTHORIZATION, h);
        }
        Ok(rb)
    }

    /// Sends `rb`; transport failures (refused, reset, TLS, timeout) become errors here,
    /// HTTP statuses are left to the caller. Logged at `-vv` without the query string.
    pub(super) async fn send(
        &self,
        rb: RequestBuilder,
        subject: &str,
    ) -> Result<Response, RegistryError> {
        let (client, req) = rb.build_split();
        let req = req.map_err(|e| self.protocol(format!("cannot build the request: {e}")))?;
        // Requests elsewhere (an upload Location on storage) name their host.
        let shown = if self.same_origin(req.url()) {
            format!("{} {}", req.method(), req.url().path())
        } else {
            let url = req.url();
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let host = url.host_str().unwrap_or("");
            format!(
                "{} {}://{host}{port}{}",
                req.method(),
                url.scheme(),
                url.path()
            )
        };
        match client.execute(req).await {
            Ok(resp) => {
                self.progress.trace(format_args!(
                    "{}: {shown} → {}",
                    self.name,
                    resp.status().as_u16()
                ));
                Ok(resp)
            }
            Err(e) => {
                let err = classify::from_reqwest(&e, &self.ctx(subject));
                self.progress.trace(format_args!(
                    "{}: {shown} failed: {}",
                    self.name,
                    err.summary()
                ));
                Err(err)
            }
        }
    }

    /// The error for a failed answer: the registry's code and message (bounded), its
    /// `Retry-After`, and for 401/403 where the credentials came from.
    pub(super) async fn failure(&self, resp: Response, subject: &str) -> RegistryError {
        // Only the registry's own answers may change how it is authenticated: a storage
        // host or redirect target asking for credentials must not pick where they go.
        if resp.status().as_u16() == 401
            && self.challenge == Challenge::None
            && self.same_origin(resp.url())
        {
            let late = Challenge::parse(
                resp.headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            if late != Challenge::None {
                self.progress.debug(format_args!(
                    "registry {}: {subject} asks for authentication although /v2/ did not",
                    self.name
                ));
                *self
                    .late_challenge
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(late);
                return RegistryError::Challenged {
                    registry: self.name.clone(),
                };
            }
        }
        // RFC 6750 §3.1: `invalid_token` means this token (not our credentials) is no
        // good — expired before its `expires_in`, revoked, or outside the registry's clock.
        if resp.status().as_u16() == 401
            && matches!(self.challenge, Challenge::Bearer { .. })
            && self.same_origin(resp.url())
            && challenge::bearer_error(
                resp.headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            )
            .is_some_and(|e| e.eq_ignore_ascii_case("invalid_token"))
        {
            self.drop_tokens();
            self.progress.debug(format_args!(
                "registry {}: {subject}: token refused as invalid; asking for a new one",
                self.name
            ));
            return RegistryError::TokenRefused {
                registry: self.name.clone(),
            };
        }
        let err = classify::from_response(resp, &self.ctx(subject)).await;
        self.explain_auth(err)
    }

    /// Adds to an authentication error whether we had credentials and where they came from.
    pub(super) fn explain_auth(&self, err: RegistryError) -> RegistryError {
        match err {
            RegistryError::Auth { registry, reason } => RegistryError::Auth {
                registry,
                reason: match &self.cred_source {
                    Some(src) => format!("{reason} (credentials from {src})"),
                    None if self.credential.is_none() => {
                        format!("{reason} (no credentials were sent)")
                    }
                    None => reason,
                },
            },
            other => other,
        }
    }

    pub(super) fn protocol(&self, reason: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            reason,
        }
    }
}

/// A header value as text, if present and printable.
pub(super) fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Basic base64(user:secret)`.
pub(super) fn basic(user: &str, secret: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `Bearer <token>`.
pub(super) fn bearer(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}
