//! `ocibuild login` / `logout` storage: writes and removes `auths` entries in Docker's
//! `config.json`, keeping every other field of the file (HttpHeaders, credsStore, …).

use std::path::Path;

use base64::Engine as _;

use super::RegistryError;
use super::auth::{helper_server_url, normalize_key};

/// Stores `user:password` for `registry` in the Docker config at `path` (creating it),
/// keeping every other field of the file. Docker Hub goes under its historical key.
pub fn save_login(
    path: &Path,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<(), RegistryError> {
    let mut root = read_json_object(path)?;
    let key = helper_server_url(registry);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let auths = root
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(Default::default());
    }
    if let Some(map) = auths.as_object_mut() {
        map.retain(|k, _| normalize_key(k) != normalize_key(registry));
        map.insert(key, serde_json::json!({ "auth": auth }));
    }
    write_json_object(path, &root)
}

/// Removes the `auths` entries for `registry`; returns whether there was one.
pub fn remove_login(path: &Path, registry: &str) -> Result<bool, RegistryError> {
    let mut root = read_json_object(path)?;
    let mut removed = false;
    if let Some(map) = root.get_mut("auths").and_then(|a| a.as_object_mut()) {
        let before = map.len();
        map.retain(|k, _| normalize_key(k) != normalize_key(registry));
        removed = map.len() != before;
    }
    if removed {
        write_json_object(path, &root)?;
    }
    Ok(removed)
}

fn read_json_object(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, RegistryError> {
    let cred_err = |reason: String| RegistryError::Credentials {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Default::default()),
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(cred_err("not a JSON object".into())),
            Err(e) => Err(cred_err(format!("not valid JSON: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(cred_err(format!("cannot read: {e}"))),
    }
}

/// Writes via a temp file + rename, mode 0600: the file holds secrets.
fn write_json_object(
    path: &Path,
    root: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), RegistryError> {
    let io = |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut bytes = serde_json::to_vec_pretty(root).map_err(|e| io(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::auth::{CredentialStore, DOCKER_HUB_KEY};

    #[tokio::test]
    async fn login_roundtrip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"auths": {"https://reg:5000": {"auth": "eDp5"}}, "psFormat": "table"}"#,
        )
        .unwrap();
        save_login(&cfg, "reg:5000", "me", "pw").unwrap();
        save_login(&cfg, "docker.io", "hub", "pw2").unwrap();
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("psFormat"));
        assert!(text.contains(DOCKER_HUB_KEY));
        let s = CredentialStore::with_files(vec![cfg.clone()], Some("".into()));
        assert_eq!(
            s.lookup("reg:5000")
                .await
                .unwrap()
                .unwrap()
                .credential
                .username,
            "me"
        );
        assert_eq!(
            s.lookup("docker.io")
                .await
                .unwrap()
                .unwrap()
                .credential
                .secret,
            "pw2"
        );
        assert!(remove_login(&cfg, "reg:5000").unwrap());
        assert!(s.lookup("reg:5000").await.unwrap().is_none());
        assert!(!remove_login(&cfg, "reg:5000").unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&cfg).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
