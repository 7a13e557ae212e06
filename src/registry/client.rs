//! One connection setup per registry host: the scheme (from the probe), the host's TLS
//! trust and client certificate, its credentials, and the reqwest client every request to
//! it goes through. Requests are in `wire.rs`, tokens and credential checks in `access.rs`.
//!
//! Why not oci-client's `Client`: it cannot present a client certificate (its
//! `ClientConfig` has no identity and it builds its own reqwest client), it drops the
//! headers of error responses (`Retry-After`), of PATCH answers (`Location`, `Range`) and of
//! POST answers (`OCI-Chunk-Min-Length`), and it has no chunked upload with a chunk size
//! of ours. So every request of a run goes through one reqwest client per host, set up here.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::RegistryError;
use super::access::{Token, refuse_reason};
use super::auth::CredentialStore;
use super::challenge::Challenge;
use super::classify::Context;
use super::probe::{self, Scheme};
use super::tls::{Der, Trust};
use super::tuning::Tuning;
use crate::image::reference::{DOCKER_HUB, is_loopback_host};
use crate::progress::Progress;

/// Time to establish a TCP (+TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("ocibuild/", env!("CARGO_PKG_VERSION"));

/// A ready-to-use registry host.
pub struct Host {
    /// The host as in references (`docker.io` for Docker Hub).
    pub name: String,
    pub scheme: Scheme,
    /// `<scheme>://<host>/v2/`: every registry URL is relative to this.
    pub(super) base: reqwest::Url,
    pub(super) challenge: Challenge,
    /// The host's trust and client certificate; used for every request to it. Never
    /// follows redirects: a 3xx answer to a HEAD means "exists" and upload bodies cannot
    /// be replayed.
    pub(super) http: reqwest::Client,
    /// Same, following redirects, for GETs (blobs are often served from storage elsewhere).
    pub(super) http_follow: reqwest::Client,
    /// For the token realm when it is on another host (that host's own trust).
    pub(super) realm_http: reqwest::Client,
    /// `(user, secret)` when we have credentials and may send them.
    pub(super) credential: Option<(String, String)>,
    /// Where the credentials came from, for "credentials from … were rejected".
    pub(super) cred_source: Option<String>,
    /// Token results per (repository, push?): failures are kept so a wrong password fails
    /// once per repository instead of once per blob.
    pub(super) authorized: Mutex<HashMap<(String, bool), Grant>>,
    /// Bearer tokens by scope key (see `access.rs`).
    pub(super) tokens: Mutex<HashMap<String, Token>>,
    pub(super) widened: Mutex<HashSet<(String, String)>>,
    pub(super) progress: Progress,
    pub(super) tuning: Tuning,
    /// Set once the registry refused a monolithic upload: later blobs go in chunks.
    pub(super) chunked_only: AtomicBool,
    /// The challenge of a 401 on a repository after `/v2/` answered anonymously: the
    /// host must be set up again with it (see [`RegistryError::Challenged`]).
    pub(super) late_challenge: Mutex<Option<Challenge>>,
}

/// The outcome of one token request, shared by every request that waits for it:
/// `Err(reason)` is a refusal (kept), transient failures are not stored.
pub(super) type Grant = Arc<OnceCell<Result<(), String>>>;

/// What every host setup of a run shares.
pub struct Setup {
    pub trust: Trust,
    pub creds: CredentialStore,
    pub progress: Progress,
    pub tuning: Tuning,
}

/// The host name used in URLs: Docker Hub's API lives on another name.
pub fn url_host(name: &str) -> &str {
    if name == DOCKER_HUB {
        "index.docker.io"
    } else {
        name
    }
}

/// How a host's reqwest client is set up.
pub(super) struct ClientSpec<'a> {
    pub(super) name: &'a str,
    pub(super) roots: &'a [Der],
    pub(super) identity: Option<&'a [u8]>,
    pub(super) insecure: bool,
    /// `roots` are the exact server certificates to accept (see `pinned.rs`).
    pub(super) pinned: bool,
    pub(super) read_timeout: Duration,
    pub(super) follow: bool,
}

/// A reqwest client with the host's trust and client certificate. When redirects are
/// followed, reqwest drops `Authorization` as soon as a redirect leaves the host, so
/// credentials never follow.
pub(super) fn http_client(spec: &ClientSpec<'_>) -> Result<reqwest::Client, RegistryError> {
    let name = spec.name;
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(spec.read_timeout)
        .redirect(redirect_policy(spec.follow));
    if spec.insecure && !spec.pinned {
        // --insecure-registry: any certificate (reqwest's own no-op verifier).
        let mut builder = builder.danger_accept_invalid_certs(true);
        if let Some(pem) = spec.identity {
            let id = reqwest::Identity::from_pem(pem).map_err(|e| RegistryError::Tls {
                registry: name.to_string(),
                reason: format!("cannot use the client certificate: {e}"),
            })?;
            builder = builder.identity(id);
        }
        return builder.build().map_err(|e| bad_roots(name, &e));
    }
    let tls = if spec.pinned {
        super::pinned::config(spec.roots, spec.identity)
    } else {
        super::system_trust::config(spec.roots, spec.identity)
    }
    .map_err(|reason| RegistryError::Tls {
        registry: name.to_string(),
        reason,
    })?;
    builder
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| bad_roots(name, &e))
}

fn redirect_policy(follow: bool) -> reqwest::redirect::Policy {
    if follow {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    }
}

fn bad_roots(name: &str, e: &dyn std::fmt::Display) -> RegistryError {
    RegistryError::Tls {
        registry: name.to_string(),
        reason: format!("cannot use the configured CA certificates: {e}"),
    }
}

impl Host {
    /// Probes `name` and sets it up; `with_credentials` false gives an anonymous host
    /// (used by `login`, which must not be blocked by stale stored credentials).
    /// Connects to `name`: probes `/v2/` for the scheme and the challenge (`challenge`,
    /// when given, replaces the probed one: a repository asked for it later).
    pub async fn connect(
        name: &str,
        setup: &Setup,
        with_credentials: bool,
        challenge: Option<Challenge>,
    ) -> Result<Host, RegistryError> {
        let loopback = is_loopback_host(name);
        let insecure = setup.trust.is_insecure(name);
        let roots = setup.trust.roots_for(name)?;
        let identity = setup.trust.identity_for(name)?;
        let mut spec = ClientSpec {
            name,
            roots: &roots,
            identity: identity.as_deref(),
            insecure,
            pinned: false,
            read_timeout: setup.tuning.read_timeout,
            follow: false,
        };
        let http = http_client(&spec)?;
        let probed = probe::probe(
            &http,
            name,
            url_host(name),
            loopback,
            insecure,
            &roots,
            identity.as_deref(),
        )
        .await?;
        let mut probed = probed;
        if let Some(c) = challenge {
            probed.challenge = c;
        }
        let progress = &setup.progress;
        let http = if probed.pinned {
            progress.debug(format_args!(
                "{name} serves a self-signed CA certificate as its server certificate; \
                 every connection must present exactly the one you trust"
            ));
            spec.pinned = true;
            http_client(&spec)?
        } else {
            http
        };
        spec.follow = true;
        let http_follow = http_client(&spec)?;
        if identity.is_some() {
            progress.debug(format_args!(
                "registry {name}: client certificate from certs.d"
            ));
        }
        progress.debug(format_args!("registry {name}: {}", probed.scheme.as_str()));
        let realm_http = realm_client(&probed.challenge, name, &http, setup)?;

        let mut credential = None;
        let mut cred_source = None;
        let found = if with_credentials && probed.challenge != Challenge::None {
            setup.creds.lookup(name).await?
        } else {
            None
        };
        if let Some(found) = found {
            match refuse_reason(name, probed.scheme, &probed.challenge) {
                Some(why) => {
                    progress.warn(format_args!("not sending credentials for {name}: {why}"))
                }
                None => {
                    let c = &found.credential;
                    // Identity tokens are OAuth2 refresh tokens; registries accept them as
                    // Basic credentials with Docker's `<token>` user name.
                    let user = if c.identity_token {
                        "<token>".to_string()
                    } else {
                        c.username.clone()
                    };
                    credential = Some((user, c.secret.clone()));
                    progress.debug(format_args!(
                        "registry {name}: credentials from {}",
                        found.source
                    ));
                    cred_source = Some(found.source);
                }
            }
        }
        let base = reqwest::Url::parse(&format!(
            "{}://{}/v2/",
            probed.scheme.as_str(),
            url_host(name)
        ))
        .map_err(|e| RegistryError::Protocol {
            registry: name.to_string(),
            reason: format!("not a usable registry address: {e}"),
        })?;
        let host = Host {
            name: name.to_string(),
            scheme: probed.scheme,
            base,
            challenge: probed.challenge,
            http,
            http_follow,
            realm_http,
            credential,
            cred_source,
            authorized: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            widened: Mutex::new(HashSet::new()),
            progress: progress.clone(),
            tuning: setup.tuning.clone(),
            chunked_only: AtomicBool::new(false),
            late_challenge: Mutex::new(None),
        };
        if host.challenge == Challenge::Basic && host.cred_source.is_some() {
            host.check_basic(&host.ctx(name)).await?;
        }
        Ok(host)
    }

    pub fn ctx<'a>(&'a self, subject: &'a str) -> Context<'a> {
        Context {
            registry: &self.name,
            subject,
        }
    }
}

/// The client for a token realm on another host: that host's certs.d and
/// `--insecure-registry` apply to it, as they would to a registry of that name.
fn realm_client(
    challenge: &Challenge,
    name: &str,
    http: &reqwest::Client,
    setup: &Setup,
) -> Result<reqwest::Client, RegistryError> {
    let Challenge::Bearer { realm, .. } = challenge else {
        return Ok(http.clone());
    };
    let realm_host = reqwest::Url::parse(realm).ok().and_then(|u| {
        let host = u.host_str()?.to_string();
        Some(match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        })
    });
    match realm_host {
        Some(h) if h != url_host(name) => {
            let roots = setup.trust.roots_for(&h)?;
            let identity = setup.trust.identity_for(&h)?;
            http_client(&ClientSpec {
                name: &h,
                roots: &roots,
                identity: identity.as_deref(),
                insecure: setup.trust.is_insecure(&h),
                pinned: false,
                read_timeout: setup.tuning.read_timeout,
                follow: false,
            })
        }
        _ => Ok(http.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_url_host() {
        assert_eq!(url_host("docker.io"), "index.docker.io");
        assert_eq!(url_host("localhost:5000"), "localhost:5000");
    }
}
