//! Who may do what on a host: bearer tokens per repository and operation (obtained once,
//! refreshed before they expire), the two-scope token for cross-repository mounts,
//! credential checks (including `login`), and the rule that credentials never travel in
//! clear text to a non-loopback host.
//!
//! Token requests follow Docker's token spec (`docs/spec/auth/token.md`): `GET <realm>?
//! service=…&scope=repository:<name>:pull[,push]`, Basic credentials when we have them
//! (anonymous otherwise), answer `token` or `access_token` with `expires_in` (60 s when
//! absent).

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::RegistryError;
use super::challenge::Challenge;
use super::classify::{self, Context};
use super::client::Host;
use super::probe::Scheme;
use super::wire::{basic, bearer};
use crate::image::reference::is_loopback_host;

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    value: String,
    /// Refresh after this (a margin before the token's real expiry).
    stale_at: Instant,
}

impl Token {
    fn fresh(&self) -> bool {
        Instant::now() < self.stale_at
    }
}

/// Docker's token spec: a token without `expires_in` lasts 60 seconds.
const DEFAULT_TOKEN_TTL: u64 = 60;

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn scope(repo: &str, push: bool) -> String {
    if push {
        format!("repository:{repo}:pull,push")
    } else {
        format!("repository:{repo}:pull")
    }
}

fn key(repo: &str, push: bool) -> String {
    format!("{repo}\u{0}{push}")
}

impl Host {
    /// Makes sure a token for `repo` and pull/push was requested once; a refusal is kept,
    /// so a wrong password fails once per repository instead of once per blob. Push tokens
    /// (scope `pull,push`) also serve pulls of that repository.
    pub async fn authorize(&self, repo: &str, push: bool) -> Result<(), RegistryError> {
        if !matches!(self.challenge, Challenge::Bearer { .. }) {
            return Ok(());
        }
        let cell = {
            let mut map = self.authorized.lock().unwrap_or_else(|p| p.into_inner());
            if !push
                && let Some(pushed) = map.get(&(repo.to_string(), true))
                && matches!(pushed.get(), Some(Ok(())))
            {
                return Ok(());
            }
            map.entry((repo.to_string(), push)).or_default().clone()
        };
        let outcome = cell
            .get_or_try_init(|| async {
                match self.fetch_token(&[scope(repo, push)]).await {
                    Ok(token) => {
                        self.store_token(repo, push, token);
                        Ok(Ok(()))
                    }
                    Err(RegistryError::Auth { reason, .. }) => Ok(Err(reason)),
                    Err(other) => Err(other),
                }
            })
            .await?;
        outcome.clone().map_err(|reason| RegistryError::Auth {
            registry: self.name.clone(),
            reason,
        })
    }

    /// The `Authorization` header for a request on `repo`: a bearer token, Basic
    /// credentials, or none (anonymous).
    pub(super) async fn auth_header(
        &self,
        repo: &str,
        push: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match &self.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.credential.as_ref().and_then(|(u, p)| basic(u, p))),
            Challenge::Bearer { .. } => Ok(bearer(&self.token_for(repo, push).await?)),
        }
    }

    fn cached_token(&self, repo: &str, push: bool) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = vec![key(repo, true)];
        if !push {
            keys.insert(0, key(repo, false));
        }
        keys.iter()
            .filter_map(|k| tokens.get(k))
            .find(|t| t.fresh())
            .map(|t| t.value.clone())
    }

    /// Forgets every token of this host (one was refused as invalid): the next request
    /// asks the token service again.
    pub(super) fn drop_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn store_token(&self, repo: &str, push: bool, token: Token) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(repo, push), token);
    }

    async fn token_for(&self, repo: &str, push: bool) -> Result<String, RegistryError> {
        if let Some(t) = self.cached_token(repo, push) {
            return Ok(t);
        }
        self.authorize(repo, push).await?;
        if let Some(t) = self.cached_token(repo, push) {
            return Ok(t);
        }
        // Granted earlier, but the token has (nearly) expired: get a new one.
        let token = self.fetch_token(&[scope(repo, push)]).await?;
        let value = token.value.clone();
        self.store_token(repo, push, token);
        Ok(value)
    }

    /// Requests a token for `scopes` from the realm of the host's Bearer challenge.
    async fn fetch_token(&self, scopes: &[String]) -> Result<Token, RegistryError> {
        let Challenge::Bearer { realm, service } = &self.challenge else {
            return Err(self.protocol("no token service announced".into()));
        };
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let mut req = self.realm_http.get(realm.as_str()).query(&query);
        if let Some((user, pass)) = &self.credential {
            req = req.basic_auth(user, Some(pass)).query(&[("account", user)]);
        }
        let ctx = self.ctx(&self.name);
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| classify::from_reqwest(&e, &ctx))?;
        if !resp.status().is_success() {
            let err = match classify::from_response(resp, &ctx).await {
                RegistryError::Auth { registry, reason } => RegistryError::Auth {
                    registry,
                    reason: format!("the token service refused: {reason}"),
                },
                other => other,
            };
            return Err(self.explain_auth(err));
        }
        let reply: TokenReply = resp.json().await.map_err(|e| {
            self.protocol(format!(
                "the token service answered something else than a token: {e}"
            ))
        })?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.protocol("the token service answered without a token".into()))?;
        let ttl = reply.expires_in.unwrap_or(DEFAULT_TOKEN_TTL).max(1);
        // Refresh with a tenth of the lifetime (at most 30 s) to spare.
        let margin = (ttl / 10).min(30);
        Ok(Token {
            value,
            stale_at: started + Duration::from_secs(ttl - margin),
        })
    }

    /// For a cross-repository mount the push token must also grant `pull` on the source
    /// (docker/distribution `docs/spec/auth/scope.md`). Fetches a token with both scopes
    /// and uses it as `target`'s push token. Best effort: without it the registry just
    /// refuses the mount and we upload.
    pub async fn widen_for_mount(&self, target_repo: &str, source_repo: &str) {
        if !matches!(self.challenge, Challenge::Bearer { .. }) {
            return;
        }
        let k = (target_repo.to_string(), source_repo.to_string());
        if self
            .widened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&k)
        {
            return;
        }
        let scopes = [scope(target_repo, true), scope(source_repo, false)];
        match self.fetch_token(&scopes).await {
            Ok(token) => {
                self.store_token(target_repo, true, token);
                self.widened
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(k);
            }
            Err(e) => self.progress.debug(format_args!(
                "{}: no token for mounting from {source_repo} ({}); blobs will be copied",
                self.name,
                e.summary()
            )),
        }
    }

    /// Basic-auth registries accept any request with the right header, so check the
    /// credentials once on `/v2/` and fail clearly instead of on every blob.
    pub(super) async fn check_basic(&self, ctx: &Context<'_>) -> Result<(), RegistryError> {
        let Some((user, pass)) = &self.credential else {
            return Ok(());
        };
        let resp = self
            .http
            .get(self.base.clone())
            .basic_auth(user, Some(pass))
            .send()
            .await
            .map_err(|e| classify::from_reqwest(&e, ctx))?;
        match resp.status().as_u16() {
            401 | 403 => Err(RegistryError::Auth {
                registry: self.name.clone(),
                reason: format!(
                    "the registry rejected the credentials from {}",
                    self.cred_source
                        .as_deref()
                        .unwrap_or("the credential store")
                ),
            }),
            408 | 429 | 500..=599 => Err(classify::from_response(resp, ctx).await),
            _ => Ok(()),
        }
    }

    /// Verifies `user`/`password` against the host (for `ocibuild login`): a Basic
    /// registry must accept them on `/v2/`; a token registry must issue a token for them.
    pub async fn verify_login(&self, user: &str, password: &str) -> Result<(), RegistryError> {
        if let Some(why) = refuse_reason(&self.name, self.scheme, &self.challenge) {
            return Err(RegistryError::Auth {
                registry: self.name.clone(),
                reason: format!("refusing to send credentials: {why}"),
            });
        }
        let ctx = self.ctx(&self.name);
        let mut req = match &self.challenge {
            Challenge::None => return Ok(()),
            Challenge::Basic => self.http.get(self.base.clone()),
            Challenge::Bearer { realm, service } => {
                let mut r = self
                    .realm_http
                    .get(realm.as_str())
                    .query(&[("account", user)]);
                if let Some(s) = service {
                    r = r.query(&[("service", s.as_str())]);
                }
                r
            }
        };
        req = req.basic_auth(user, Some(password));
        let resp = req
            .send()
            .await
            .map_err(|e| classify::from_reqwest(&e, &ctx))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(match classify::from_response(resp, &ctx).await {
            RegistryError::Auth { registry, reason } => RegistryError::Auth {
                registry,
                reason: format!("login rejected: {reason}"),
            },
            other => other,
        })
    }
}

/// Why credentials must not be sent to this host, if they must not: never in clear text to
/// a non-loopback host, be it the registry itself or its token realm.
pub(super) fn refuse_reason(name: &str, scheme: Scheme, challenge: &Challenge) -> Option<String> {
    if scheme == Scheme::Http && !is_loopback_host(name) {
        return Some(format!("{name} is reached over plain HTTP"));
    }
    if let Challenge::Bearer { realm, .. } = challenge {
        // Parsed, not split by hand: `HTTP://…` and `http://localhost:1@evil.example/`
        // must be judged by the host reqwest will really connect to.
        let Ok(url) = reqwest::Url::parse(realm) else {
            return Some(format!("its token service {realm:?} is not a valid URL"));
        };
        // `host_str` keeps IPv6 brackets, which `is_loopback_host` expects.
        let host = url.host_str().unwrap_or("");
        if url.scheme() != "https" && !is_loopback_host(host) {
            return Some(format!("its token service {realm} is plain HTTP"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_realms_are_judged_by_their_real_host() {
        let bearer = |realm: &str| Challenge::Bearer {
            realm: realm.to_string(),
            service: None,
        };
        let refused = |realm: &str| refuse_reason("reg.example", Scheme::Https, &bearer(realm));
        assert!(refused("https://auth.example/token").is_none());
        assert!(refused("http://127.0.0.1:5001/token").is_none());
        assert!(refused("http://[::1]:5001/token").is_none());
        assert!(refused("http://auth.example/token").is_some());
        assert!(refused("HTTP://auth.example/token").is_some());
        assert!(refused("http://localhost:1@evil.example/token").is_some());
        assert!(refused("not a url").is_some());
    }

    #[test]
    fn token_freshness_and_scopes() {
        let now = Instant::now();
        let t = |at| Token {
            value: "t".into(),
            stale_at: at,
        };
        assert!(t(now + Duration::from_secs(5)).fresh());
        assert!(!t(now).fresh());
        assert_eq!(scope("a/b", true), "repository:a/b:pull,push");
        assert_eq!(scope("a/b", false), "repository:a/b:pull");
        assert_ne!(key("a", true), key("a", false));
    }

    #[test]
    fn credentials_stay_off_plain_http() {
        let bearer = |realm: &str| Challenge::Bearer {
            realm: realm.into(),
            service: None,
        };
        assert!(refuse_reason("localhost:5000", Scheme::Http, &Challenge::Basic).is_none());
        assert!(
            refuse_reason(
                "127.0.0.1:5000",
                Scheme::Http,
                &bearer("http://127.0.0.1:9/token")
            )
            .is_none()
        );
        assert!(refuse_reason("reg.lan:5000", Scheme::Http, &Challenge::Basic).is_some());
        assert!(refuse_reason("reg.lan:5000", Scheme::Https, &Challenge::Basic).is_none());
        assert!(
            refuse_reason(
                "reg.lan:5000",
                Scheme::Https,
                &bearer("http://auth.lan/token")
            )
            .is_some()
        );
        assert!(
            refuse_reason(
                "reg.lan:5000",
                Scheme::Https,
                &bearer("https://auth.lan/token")
            )
            .is_none()
        );
        assert!(
            refuse_reason(
                "localhost:5000",
                Scheme::Http,
                &bearer("http://auth.lan/token")
            )
            .is_some()
        );
    }
}
