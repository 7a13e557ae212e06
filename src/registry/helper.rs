//! The Docker credential-helper protocol: run `docker-credential-<name> get`, write the
//! server URL on stdin, read `{"Username": …, "Secret": …}` from stdout; `store` and
//! `erase` for `ocibuild login`/`logout` when a helper is configured.
//!
//! See docker/docker-credential-helpers (`client/client.go`): a helper that has nothing
//! for the server exits non-zero and prints "credentials not found in native keychain";
//! that is "no credentials", not an error. A `<token>` username marks an identity token.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::RegistryError;
use super::auth::Credential;

/// Helpers may unlock a keychain; give them time, but never hang a build forever.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a helper prints on stdout for a "not found" answer.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// `docker-credential-<name> store`: keeps `username`/`secret` for `server` in the
/// helper's keychain (what `docker login` does when a helper is configured).
pub async fn store(
    name: &str,
    server: &str,
    username: &str,
    secret: &str,
    path: Option<&OsStr>,
) -> Result<(), RegistryError> {
    let input = serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret});
    let output = run(name, "store", input.to_string().as_bytes(), path).await?;
    checked(name, "store", &output)
}

/// `docker-credential-<name> erase`: forgets `server`; "not found" is not an error.
pub async fn erase(name: &str, server: &str, path: Option<&OsStr>) -> Result<bool, RegistryError> {
    let mut input = server.as_bytes().to_vec();
    input.push(b'\n');
    let output = run(name, "erase", &input, path).await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() && text.contains(NOT_FOUND) {
        return Ok(false);
    }
    checked(name, "erase", &output).map(|()| true)
}

/// A failed `store`/`erase`: the first stderr line only (helpers put diagnostics there;
/// stdin held the secret and is never echoed).
fn checked(name: &str, verb: &str, output: &std::process::Output) -> Result<(), RegistryError> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or("").trim();
    Err(RegistryError::Credentials {
        path: format!("docker-credential-{name}"),
        reason: format!(
            "`{verb}` failed ({}){}",
            output.status,
            if first.is_empty() {
                String::new()
            } else {
                format!(": {}", super::error::bounded(first))
            }
        ),
    })
}

/// Runs `docker-credential-<name> <verb>` with `input` on stdin, bounded in time.
async fn run(
    name: &str,
    verb: &str,
    input: &[u8],
    path: Option<&OsStr>,
) -> Result<std::process::Output, RegistryError> {
    let program = format!("docker-credential-{name}");
    let fail = |reason: String| RegistryError::Credentials {
        path: program.clone(),
        reason,
    };
    if name.is_empty() || name.contains('/') {
        return Err(fail("invalid helper name".into()));
    }
    let search = path
        .map(OsStr::to_os_string)
        .or_else(|| std::env::var_os("PATH"));
    let exe = find_program(&program, search.as_deref()).ok_or_else(|| {
        fail("helper not found in PATH (configured in credHelpers/credsStore)".into())
    })?;
    let mut child = tokio::process::Command::new(&exe)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", exe.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin is fine: ignore a broken pipe.
        let _ = stdin.write_all(input).await;
    }
    tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no answer within {}s", HELPER_TIMEOUT.as_secs())))?
        .map_err(|e| fail(format!("cannot run: {e}")))
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Asks helper `name` for `server`'s credentials. `path` overrides `$PATH` for finding the
/// helper (tests); `None` uses the process' `PATH`.
pub async fn get(
    name: &str,
    server: &str,
    path: Option<&OsStr>,
) -> Result<Option<Credential>, RegistryError> {
    let program = format!("docker-credential-{name}");
    let fail = |reason: String| RegistryError::Credentials {
        path: program.clone(),
        reason,
    };
    let mut input = server.as_bytes().to_vec();
    input.push(b'\n');
    let output = run(name, "get", &input, path).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if stdout.contains(NOT_FOUND) || String::from_utf8_lossy(&output.stderr).contains(NOT_FOUND)
        {
            return Ok(None);
        }
        // stdout of a failed `get` may be anything; show only the first stderr line,
        // which helpers use for diagnostics (the protocol never echoes secrets there).
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        let detail = if first.is_empty() {
            String::new()
        } else {
            format!(": {}", super::error::bounded(first))
        };
        return Err(fail(format!("`get` failed ({}){detail}", output.status)));
    }
    // Never quote stdout in errors: it holds the secret.
    let reply: HelperReply = serde_json::from_str(stdout.trim())
        .map_err(|_| fail("`get` printed something that is not the expected JSON".into()))?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    let identity_token = reply.username == "<token>";
    Ok(Some(Credential {
        username: if identity_token {
            String::new()
        } else {
            reply.username
        },
        secret: reply.secret,
        identity_token,
    }))
}

fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    let path: OsString = path.map(OsStr::to_os_string)?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::auth::CredentialStore;

    /// Writes `docker-credential-<name>` as a shell script into `dir`.
    fn helper(dir: &std::path::Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn protocol() {
        let dir = tempfile::tempdir().unwrap();
        // Echoes the server it was asked for into the username, to check stdin.
        helper(
            dir.path(),
            "echo",
            r#"[ "$1" = get ] || exit 3
read server
printf '{"ServerURL":"%s","Username":"user-%s","Secret":"sek"}' "$server" "$server""#,
        );
        helper(
            dir.path(),
            "none",
            r#"echo "credentials not found in native keychain"; exit 1"#,
        );
        helper(
            dir.path(),
            "broken",
            r#"echo "pass store is locked" >&2; exit 2"#,
        );
        helper(
            dir.path(),
            "token",
            r#"echo '{"Username":"<token>","Secret":"idtok"}'"#,
        );
        let path = Some(dir.path().as_os_str());

        let c = get("echo", "reg:5000", path).await.unwrap().unwrap();
        assert_eq!(c.username, "user-reg:5000");
        assert_eq!(c.secret, "sek");
        assert!(get("none", "reg:5000", path).await.unwrap().is_none());
        let err = get("broken", "reg:5000", path)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker-credential-broken") && err.contains("pass store is locked"),
            "{err}"
        );
        let t = get("token", "reg:5000", path).await.unwrap().unwrap();
        assert!(t.identity_token);
        let err = get("absent", "reg:5000", path)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found in PATH"), "{err}");
    }

    #[tokio::test]
    async fn helpers_win_per_host() {
        let dir = tempfile::tempdir().unwrap();
        helper(
            dir.path(),
            "echo",
            r#"read server; printf '{"Username":"h-%s","Secret":"s"}' "$server""#,
        );
        helper(
            dir.path(),
            "none",
            r#"echo "credentials not found in native keychain"; exit 1"#,
        );
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"auths": {"a.example": {"username": "file", "password": "p"},
                          "b.example": {"username": "file", "password": "p"}},
                "credHelpers": {"a.example": "echo"},
                "credsStore": "none"}"#,
        )
        .unwrap();
        let s = CredentialStore::with_files(vec![cfg], Some(dir.path().as_os_str().to_os_string()));
        let a = s.lookup("a.example").await.unwrap().unwrap();
        assert_eq!(a.credential.username, "h-a.example");
        assert_eq!(a.source, "docker-credential-echo");
        // credsStore has nothing for b: fall back to auths.
        let b = s.lookup("b.example").await.unwrap().unwrap();
        assert_eq!(b.credential.username, "file");
        // Docker Hub is asked for under its historical key.
        let s2 = {
            let cfg2 = dir.path().join("hub.json");
            std::fs::write(&cfg2, r#"{"credHelpers": {"docker.io": "echo"}}"#).unwrap();
            CredentialStore::with_files(vec![cfg2], Some(dir.path().as_os_str().to_os_string()))
        };
        let hub = s2.lookup("docker.io").await.unwrap().unwrap();
        assert_eq!(hub.credential.username, "h-https://index.docker.io/v1/");
    }
}
