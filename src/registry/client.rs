//! One connection setup per registry host: the scheme (from the probe), the host's TLS
//! trust, its credentials, an oci-client `Client` built with `Client::try_from` (so a bad
//! certificate is an error, not a silently default client). Tokens and credential checks
//! are in `access.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use tokio::sync::OnceCell;

use super::RegistryError;
use super::access::refuse_reason;
use super::auth::CredentialStore;
use super::challenge::Challenge;
use super::classify::{self, Context};
use super::probe::{self, Scheme};
use super::tls::Trust;
use crate::image::reference::{DOCKER_HUB, is_loopback_host};
use crate::image::{Digest, Reference};
use crate::progress::Progress;

/// Time to establish a TCP (+TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while reading a response (per read, so big blobs are fine).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
const USER_AGENT: &str = concat!("ocibuild/", env!("CARGO_PKG_VERSION"));

/// A ready-to-use registry host.
pub struct Host {
    /// The host as in references (`docker.io` for Docker Hub).
    pub name: String,
    pub client: Client,
    /// What oci-client sends; Anonymous when we have no credentials or may not send them.
    pub auth: RegistryAuth,
    pub scheme: Scheme,
    pub(super) challenge: Challenge,
    /// Same trust as `client`, for requests oci-client cannot make (two-scope tokens).
    pub(super) http: reqwest::Client,
    /// Where the credentials came from, for "credentials from … were rejected".
    pub(super) cred_source: Option<String>,
    /// Token results per (repository, push?): failures are kept so a wrong password fails
    /// once per repository instead of once per blob.
    pub(super) authorized: Mutex<HashMap<(String, bool), Grant>>,
    pub(super) widened: Mutex<HashSet<(String, String)>>,
    pub(super) progress: Progress,
}

/// The outcome of one token request, shared by every request that waits for it:
/// `Err(reason)` is a refusal (kept), transient failures are not stored.
pub(super) type Grant = Arc<OnceCell<Result<(), String>>>;

/// What every host setup of a run shares.
pub struct Setup {
    pub trust: Trust,
    pub creds: CredentialStore,
    pub progress: Progress,
}

/// The host name used in URLs: Docker Hub's API lives on another name (as oci-client's
/// `Reference::resolve_registry` does).
pub fn url_host(name: &str) -> &str {
    if name == DOCKER_HUB {
        "index.docker.io"
    } else {
        name
    }
}

/// A reqwest client with the host's trust; used for the probe and our own token requests.
fn http_client(
    name: &str,
    roots: &[oci_client::client::Certificate],
    insecure: bool,
) -> Result<reqwest::Client, RegistryError> {
    let certs = roots
        .iter()
        .map(reqwest::Certificate::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_roots(name, &e))?;
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .danger_accept_invalid_certs(insecure)
        .tls_certs_merge(certs)
        .build()
        .map_err(|e| bad_roots(name, &e))
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
    pub async fn connect(
        name: &str,
        setup: &Setup,
        with_credentials: bool,
    ) -> Result<Host, RegistryError> {
        let ctx = Context {
            registry: name,
            subject: name,
        };
        let loopback = is_loopback_host(name);
        let insecure = setup.trust.is_insecure(name);
        let roots = setup.trust.roots_for(name)?;
        let http = http_client(name, &roots, insecure)?;
        let pins = super::tls::ders(&roots);
        let probed = probe::probe(&http, name, url_host(name), loopback, insecure, &pins).await?;
        let progress = &setup.progress;
        let http = if probed.pinned {
            progress.warn(format_args!(
                "{name} serves a self-signed CA certificate, which rustls cannot verify; it \
                 matched the certificate you trust, so {name} is used without further \
                 certificate checks this run (a CA-signed server certificate avoids this)"
            ));
            http_client(name, &roots, true)?
        } else {
            http
        };
        progress.debug(format_args!("registry {name}: {}", probed.scheme.as_str()));

        let mut auth = RegistryAuth::Anonymous;
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
                    // Identity tokens are OAuth2 refresh tokens; oci-client only knows Basic
                    // and Bearer, so they go as Basic with Docker's `<token>` user name.
                    let user = if c.identity_token {
                        "<token>".to_string()
                    } else {
                        c.username.clone()
                    };
                    auth = RegistryAuth::Basic(user, c.secret.clone());
                    progress.debug(format_args!(
                        "registry {name}: credentials from {}",
                        found.source
                    ));
                    cred_source = Some(found.source);
                }
            }
        }

        let config = ClientConfig {
            protocol: match probed.scheme {
                Scheme::Https => ClientProtocol::Https,
                Scheme::Http => ClientProtocol::Http,
            },
            accept_invalid_certificates: insecure || probed.pinned,
            // Monolithic PUT when the size is known: one request per blob, and the body
            // streams (push_blob_stream) without loading the blob into memory.
            use_monolithic_push: true,
            extra_root_certificates: roots,
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| bad_roots(name, &e))?;
        let host = Host {
            name: name.to_string(),
            client,
            auth,
            scheme: probed.scheme,
            challenge: probed.challenge,
            http,
            cred_source,
            authorized: Mutex::new(HashMap::new()),
            widened: Mutex::new(HashSet::new()),
            progress: progress.clone(),
        };
        if host.challenge == Challenge::Basic && host.cred_source.is_some() {
            host.check_basic(&ctx).await?;
        }
        Ok(host)
    }

    /// oci-client's reference for `r` (by digest when it has one, else by tag).
    pub fn oci_ref(&self, r: &Reference) -> oci_client::Reference {
        match r.digest() {
            Some(d) => self.oci_ref_digest(r, d),
            None => oci_client::Reference::with_tag(
                self.name.clone(),
                r.repository().to_string(),
                r.tag().unwrap_or("latest").to_string(),
            ),
        }
    }

    /// `r`'s repository on this host, addressed by `digest`.
    pub fn oci_ref_digest(&self, r: &Reference, digest: &Digest) -> oci_client::Reference {
        oci_client::Reference::with_digest(
            self.name.clone(),
            r.repository().to_string(),
            digest.to_string(),
        )
    }

    pub fn ctx<'a>(&'a self, subject: &'a str) -> Context<'a> {
        Context {
            registry: &self.name,
            subject,
        }
    }

    /// Maps an oci-client error, turning a bare 401 into a message that says whether we
    /// had credentials and where they came from.
    pub fn error(
        &self,
        e: oci_client::errors::OciDistributionError,
        subject: &str,
    ) -> RegistryError {
        match classify::classify(e, &self.ctx(subject)) {
            RegistryError::Auth { registry, reason } => RegistryError::Auth {
                registry,
                reason: match &self.cred_source {
                    Some(src) => format!("{reason} (credentials from {src})"),
                    None if matches!(self.auth, RegistryAuth::Anonymous) => {
                        format!("{reason} (no credentials were sent)")
                    }
                    None => reason,
                },
            },
            other => other,
        }
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
