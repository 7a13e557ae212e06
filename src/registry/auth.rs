//! Registry credentials: Docker's `config.json` (`auths`, `credHelpers`, `credsStore`),
//! `$REGISTRY_AUTH_FILE` and podman's `auth.json`, looked up per registry host.
//!
//! Lookup order (first hit wins): the Docker config (`--docker-config`/`$DOCKER_CONFIG`/
//! `~/.docker`), then `$REGISTRY_AUTH_FILE`, then `${XDG_RUNTIME_DIR}/containers/auth.json`.
//! Within a Docker config a `credHelpers` entry for the host wins, then `credsStore`, then
//! `auths` — as the Docker CLI does; `auths` is also consulted when a helper has nothing.
//! Secrets live only in [`Credential`], whose `Debug` is redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;
use super::helper;
use crate::image::reference::DOCKER_HUB;

/// The key Docker stores Docker Hub credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username/secret pair. `identity_token` is set when the secret is an OAuth2 identity
/// (refresh) token rather than a password (helpers say so with the `<token>` username).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
    pub identity_token: bool,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("identity_token", &self.identity_token)
            .finish()
    }
}

/// A credential and where it came from (a file path or `docker-credential-<name>`), for
/// messages such as "credentials from … were rejected".
#[derive(Clone, Debug)]
pub struct Found {
    pub credential: Credential,
    pub source: String,
}

/// The files to look in and how to run helpers; built once per run.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    /// Docker `config.json` first, then podman-style `auth.json` files.
    files: Vec<PathBuf>,
    /// `PATH` to find `docker-credential-*` in (None: the process' `PATH`).
    helper_path: Option<std::ffi::OsString>,
}

/// The parts of `config.json` / `auth.json` we read; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

impl CredentialStore {
    /// The standard locations: `docker_config_dir` (else `$DOCKER_CONFIG`, else
    /// `~/.docker`), `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`.
    pub fn from_env(docker_config_dir: Option<&Path>) -> CredentialStore {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let docker_dir = docker_config_dir
            .map(Path::to_path_buf)
            .or_else(|| env("DOCKER_CONFIG"))
            .or_else(|| env("HOME").map(|h| h.join(".docker")));
        let mut files = Vec::new();
        files.extend(docker_dir.map(|d| d.join("config.json")));
        files.extend(env("REGISTRY_AUTH_FILE"));
        files.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers").join("auth.json")));
        CredentialStore {
            files,
            helper_path: None,
        }
    }

    /// Explicit files and helper search path (tests, or callers with their own policy).
    pub fn with_files(
        files: Vec<PathBuf>,
        helper_path: Option<std::ffi::OsString>,
    ) -> CredentialStore {
        CredentialStore { files, helper_path }
    }

    /// The Docker config file written by `ocibuild login`, if any is configured.
    pub fn docker_config_file(&self) -> Option<&Path> {
        self.files.first().map(PathBuf::as_path)
    }

    /// The credential helper the Docker config file names for `registry` (its
    /// `credHelpers` entry, else `credsStore`): where `login` must store, as Docker does.
    pub fn helper_for(&self, registry: &str) -> Result<Option<String>, RegistryError> {
        let Some(path) = self.files.first() else {
            return Ok(None);
        };
        let Some(config) = read_config(path)? else {
            return Ok(None);
        };
        let want = normalize_key(registry);
        Ok(config
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == want)
            .map(|(_, v)| v.clone())
            .or_else(|| config.creds_store.clone().filter(|s| !s.is_empty())))
    }

    /// `$PATH` override for finding helpers (tests).
    pub fn helper_path(&self) -> Option<&std::ffi::OsStr> {
        self.helper_path.as_deref()
    }

    /// Credentials for `registry` (`host[:port]` as in the reference; `docker.io` for
    /// Docker Hub), or None for anonymous access.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Found>, RegistryError> {
        let want = normalize_key(registry);
        for path in &self.files {
            let Some(config) = read_config(path)? else {
                continue;
            };
            let helper_name = config
                .cred_helpers
                .iter()
                .find(|(k, _)| normalize_key(k) == want)
                .map(|(_, v)| v.clone())
                .or_else(|| config.creds_store.clone().filter(|s| !s.is_empty()));
            if let Some(name) = helper_name {
                let server = helper_server_url(registry);
                if let Some(credential) =
                    helper::get(&name, &server, self.helper_path.as_deref()).await?
                {
                    return Ok(Some(Found {
                        credential,
                        source: format!("docker-credential-{name}"),
                    }));
                }
            }
            if let Some(credential) = from_auths(&config, &want, path)? {
                return Ok(Some(Found {
                    credential,
                    source: path.display().to_string(),
                }));
            }
        }
        Ok(None)
    }
}

/// What a credential helper is asked for: Docker Hub under its historical key, anything
/// else by host, as `docker login` stores them.
pub(super) fn helper_server_url(registry: &str) -> String {
    if normalize_key(registry) == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Reduces an `auths` key to the host it is for: `https://host/v1/` → `host`;
/// `index.docker.io`, `registry-1.docker.io` → `docker.io`. Keys are compared this way
/// because Docker, podman and helpers each write a different form.
pub fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, RegistryError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::Credentials {
                path: path.display().to_string(),
                reason: format!("cannot read: {e}"),
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // serde_json's message carries a line/column, never the offending value.
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| RegistryError::Credentials {
            path: path.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        })
}

/// The `auths` entry for the host. An exact host key wins over a key with a path
/// (podman allows `host/namespace` keys; we use them for the whole host).
fn from_auths(
    config: &ConfigFile,
    want: &str,
    path: &Path,
) -> Result<Option<Credential>, RegistryError> {
    let mut best: Option<(&String, &AuthEntry)> = None;
    for (key, entry) in &config.auths {
        if normalize_key(key) != want {
            continue;
        }
        let exact = !key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .contains('/')
            || key.ends_with("/v1/")
            || key.ends_with("/v2/");
        if best.is_none() || exact {
            best = Some((key, entry));
        }
    }
    let Some((key, entry)) = best else {
        return Ok(None);
    };
    let bad = |reason: &str| RegistryError::Credentials {
        path: path.display().to_string(),
        reason: format!("auths entry {key:?}: {reason}"),
    };
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential {
            username: entry.username.clone().unwrap_or_default(),
            secret: token.to_string(),
            identity_token: true,
        }));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not base64 of user:password"))?;
        return Ok(Some(Credential {
            username: user.to_string(),
            secret: pass.to_string(),
            identity_token: false,
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential {
            username: u.clone(),
            secret: p.clone(),
            identity_token: false,
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
