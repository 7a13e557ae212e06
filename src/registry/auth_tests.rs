//! Tests of `auth.rs`: key normalization, `auths` forms, file order and errors, redaction.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn store(files: Vec<PathBuf>) -> CredentialStore {
    // An empty PATH: no helper can be found by accident.
    CredentialStore::with_files(files, Some("".into()))
}

#[test]
fn key_normalization() {
    assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
    assert_eq!(normalize_key("registry-1.docker.io"), "docker.io");
    assert_eq!(normalize_key("docker.io"), "docker.io");
    assert_eq!(normalize_key("http://myreg:5000/v1/"), "myreg:5000");
    assert_eq!(normalize_key("https://MyReg.com"), "myreg.com");
    assert_eq!(normalize_key("quay.io/org"), "quay.io");
    assert_eq!(normalize_key("localhost:5000"), "localhost:5000");
}

#[tokio::test]
async fn auths_forms() {
    let dir = tempfile::tempdir().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
    let cfg = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{b64}"}},
                "http://reg.example:5000/v1/": {{"username": "bob", "password": "pw"}},
                "quay.io/org": {{"auth": "{b64}"}},
                "empty.example": {{}}
            }}, "HttpHeaders": {{"X": "y"}}}}"#
        ),
    );
    let s = store(vec![cfg.clone()]);
    let hub = s.lookup("docker.io").await.unwrap().unwrap();
    assert_eq!(hub.credential.username, "alice");
    assert_eq!(hub.credential.secret, "s3cr:et");
    assert_eq!(hub.source, cfg.display().to_string());
    let reg = s.lookup("reg.example:5000").await.unwrap().unwrap();
    assert_eq!(
        (
            reg.credential.username.as_str(),
            reg.credential.secret.as_str()
        ),
        ("bob", "pw")
    );
    assert!(s.lookup("quay.io").await.unwrap().is_some());
    assert!(
        s.lookup("reg.example").await.unwrap().is_none(),
        "port matters"
    );
    assert!(s.lookup("empty.example").await.unwrap().is_none());
    assert!(s.lookup("other.example").await.unwrap().is_none());
}

#[tokio::test]
async fn file_order_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        dir.path(),
        "a.json",
        r#"{"auths": {"h1": {"username": "u1", "password": "p1"}}}"#,
    );
    let second = write(
        dir.path(),
        "b.json",
        r#"{"auths": {"h1": {"username": "u2", "password": "p2"}, "h2": {"username": "u3", "password": "p3"}}}"#,
    );
    let missing = dir.path().join("missing.json");
    let s = store(vec![missing, first, second]);
    assert_eq!(
        s.lookup("h1").await.unwrap().unwrap().credential.username,
        "u1"
    );
    assert_eq!(
        s.lookup("h2").await.unwrap().unwrap().credential.username,
        "u3"
    );

    let broken = write(
        dir.path(),
        "broken.json",
        r#"{"auths": {"h": {"auth": "c2VjcmV0"}}"#,
    );
    let err = store(vec![broken]).lookup("h").await.unwrap_err();
    assert!(matches!(err, RegistryError::Credentials { .. }), "{err}");

    let nocolon = write(
        dir.path(),
        "nocolon.json",
        r#"{"auths": {"h": {"auth": "c2VjcmV0"}}}"#,
    );
    let err = store(vec![nocolon])
        .lookup("h")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("secret") && !err.contains("c2VjcmV0"),
        "{err}"
    );
}

#[test]
fn debug_is_redacted() {
    let c = Credential {
        username: "u".into(),
        secret: "hunter2".into(),
        identity_token: false,
    };
    assert!(!format!("{c:?}").contains("hunter2"));
}
