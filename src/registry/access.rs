//! Who may do what on a host: tokens obtained once per repository and operation, the
//! two-scope token for cross-repository mounts, credential checks (including `login`), and
//! the rule that credentials never travel in clear text to a non-loopback host.

use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};

use super::RegistryError;
use super::challenge::Challenge;
use super::classify::{self, Context};
use super::client::{Host, url_host};
use super::probe::Scheme;
use crate::image::reference::is_loopback_host;

impl Host {
    /// Gets the token for `r`'s repository and `op` once; later requests reuse oci-client's
    /// token cache. Push tokens (scope `pull,push`) also serve pulls of that repository.
    pub async fn authorize(
        &self,
        r: &oci_client::Reference,
        op: RegistryOperation,
    ) -> Result<(), RegistryError> {
        if self.challenge == Challenge::None {
            return Ok(());
        }
        let push = op == RegistryOperation::Push;
        let cell = {
            let mut map = self.authorized.lock().unwrap_or_else(|p| p.into_inner());
            // A granted push token already serves pulls (installed in `get_or_try_init`).
            let repo = r.repository().to_string();
            if !push
                && let Some(pushed) = map.get(&(repo.clone(), true))
                && matches!(pushed.get(), Some(Ok(())))
            {
                return Ok(());
            }
            map.entry((repo, push)).or_default().clone()
        };
        let subject = format!("{}/{}", self.name, r.repository());
        let outcome = cell
            .get_or_try_init(|| async {
                match self.client.auth(r, &self.auth, op).await {
                    Ok(Some(token)) => {
                        if push {
                            let t = RegistryTokenType::Bearer(RegistryToken::Token { token });
                            self.client
                                .tokens
                                .insert(r, RegistryOperation::Pull, t)
                                .await;
                        }
                        Ok(Ok(()))
                    }
                    Ok(None) => Ok(Ok(())),
                    Err(e) => match self.error(e, &subject) {
                        RegistryError::Auth { reason, .. } => Ok(Err(reason)),
                        other => Err(other),
                    },
                }
            })
            .await?;
        outcome.clone().map_err(|reason| RegistryError::Auth {
            registry: self.name.clone(),
            reason,
        })
    }

    /// For a cross-repository mount the push token must also grant `pull` on the source
    /// (docker/distribution `docs/spec/auth/scope.md`; oci-client only asks for the target's
    /// scope). Fetches a token with both scopes and installs it as `target`'s push token.
    /// Best effort: without it the registry just refuses the mount and we upload.
    pub async fn widen_for_mount(&self, target: &oci_client::Reference, source_repo: &str) {
        let Challenge::Bearer { realm, service } = &self.challenge else {
            return;
        };
        let key = (target.repository().to_string(), source_repo.to_string());
        if self
            .widened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return;
        }
        let mut query = vec![
            (
                "scope",
                format!("repository:{}:pull,push", target.repository()),
            ),
            ("scope", format!("repository:{source_repo}:pull")),
        ];
        if let Some(s) = service {
            query.insert(0, ("service", s.clone()));
        }
        let mut req = self.http.get(realm.as_str()).query(&query);
        if let RegistryAuth::Basic(user, pass) = &self.auth {
            req = req.basic_auth(user, Some(pass));
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let reply = match req.send().await {
            Ok(r) if r.status().is_success() => r.json::<TokenReply>().await.ok(),
            _ => None,
        };
        match reply.and_then(|t| t.token.or(t.access_token)) {
            Some(token) => {
                let t = RegistryTokenType::Bearer(RegistryToken::Token { token });
                self.client
                    .tokens
                    .insert(target, RegistryOperation::Push, t)
                    .await;
                self.widened
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key);
            }
            None => self.progress.debug(format_args!(
                "{}: no token for mounting from {source_repo}; blobs will be copied",
                self.name
            )),
        }
    }

    /// Basic-auth registries accept any request with the right header, so check the
    /// credentials once on `/v2/` and fail clearly instead of on every blob.
    pub(super) async fn check_basic(&self, ctx: &Context<'_>) -> Result<(), RegistryError> {
        let RegistryAuth::Basic(user, pass) = &self.auth else {
            return Ok(());
        };
        let url = format!("{}://{}/v2/", self.scheme.as_str(), url_host(&self.name));
        let resp = self
            .http
            .get(&url)
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
        let url = match &self.challenge {
            Challenge::None => return Ok(()),
            Challenge::Basic => format!("{}://{}/v2/", self.scheme.as_str(), url_host(&self.name)),
            Challenge::Bearer { realm, .. } => realm.clone(),
        };
        let mut req = self.http.get(&url).basic_auth(user, Some(password));
        if let Challenge::Bearer {
            service: Some(s), ..
        } = &self.challenge
        {
            req = req.query(&[("service", s.as_str()), ("account", user)]);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| classify::from_reqwest(&e, &ctx))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(match classify::from_status(status, &body, &ctx) {
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
        let rest = realm.strip_prefix("http://")?;
        let realm_host = rest.split('/').next().unwrap_or(rest);
        if !is_loopback_host(realm_host) {
            return Some(format!("its token service {realm} is plain HTTP"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
