//! Authentication against real registries (ignored by default; see `live_tests.rs` for
//! how to run): htpasswd Basic auth at `OCIBUILD_LIVE_BASIC`, token auth at
//! `OCIBUILD_LIVE_TOKEN`, both with the user `OCIBUILD_LIVE_BASIC_USER` (`user:password`).

use std::path::Path;

use super::live_tests::{bytes_of, env, image, registries, unique};
use super::*;
use crate::sink::Artifact;

#[tokio::test]
#[ignore]
async fn live_basic_auth() {
    let (Some(host), Some(user)) = (env("OCIBUILD_LIVE_BASIC"), env("OCIBUILD_LIVE_BASIC_USER"))
    else {
        return;
    };
    let (user, pass) = user.split_once(':').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = unique();
    let target = Reference::parse(&format!("{host}/live/auth-{id}:v1")).unwrap();
    let img = image(dir.path(), &id);

    // Anonymous: refused, saying no credentials were sent.
    let e = registries(RegistryOptions {
        docker_config_dir: Some(dir.path().join("none")),
        ..Default::default()
    })
    .push_blob_bytes(&target, &img.config.descriptor, bytes_of(&img.config))
    .await
    .unwrap_err();
    println!("anonymous: {e}");
    assert_eq!(e.kind(), ErrorKind::Auth);

    // Wrong password: refused once, the password is not in the message.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    login::save_login(
        &wrong.join("config.json"),
        &host,
        user,
        "not-the-password-xyz",
    )
    .unwrap();
    let e = registries(RegistryOptions {
        docker_config_dir: Some(wrong),
        ..Default::default()
    })
    .push_blob_bytes(&target, &img.config.descriptor, bytes_of(&img.config))
    .await
    .unwrap_err();
    println!("wrong: {e}");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(!e.to_string().contains("not-the-password-xyz"));

    // login verifies, stores; then pushes work.
    let good = dir.path().join("good");
    let regs = registries(RegistryOptions {
        docker_config_dir: Some(good.clone()),
        ..Default::default()
    });
    assert!(regs.login(&host, user, "bad-password").await.is_err());
    regs.login(&host, user, pass).await.unwrap();
    let regs = registries(RegistryOptions {
        docker_config_dir: Some(good),
        ..Default::default()
    });
    let artifact = Artifact::Image(img.clone());
    let progress = regs.progress().clone();
    crate::sink::registry::push(&artifact, &target, &regs, &progress)
        .await
        .unwrap();
    assert_eq!(
        regs.fetch_manifest(&target).await.unwrap().digest,
        img.manifest_digest
    );
}

#[tokio::test]
#[ignore]
async fn live_token_auth_and_mount_scope() {
    let (Some(host), Some(user)) = (env("OCIBUILD_LIVE_TOKEN"), env("OCIBUILD_LIVE_BASIC_USER"))
    else {
        return;
    };
    let (user, pass) = user.split_once(':').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = unique();
    let base = Reference::parse(&format!("{host}/live/tbase-{id}:v1")).unwrap();
    let target = Reference::parse(&format!("{host}/live/tapp-{id}:v1")).unwrap();
    let img = image(dir.path(), &id);
    let config = |d: &Path| {
        let c = d.join("cfg");
        std::fs::create_dir_all(&c).unwrap();
        c
    };

    // Anonymous: the token service grants pull only, so the push is denied.
    let anon = registries(RegistryOptions {
        docker_config_dir: Some(dir.path().join("none")),
        ..Default::default()
    });
    let e = anon
        .push_blob_bytes(&base, &img.config.descriptor, bytes_of(&img.config))
        .await
        .unwrap_err();
    println!("anonymous: {e}");
    assert_eq!(e.kind(), ErrorKind::Auth);

    // Wrong password: the token request is refused, once.
    let wrong_dir = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong_dir).unwrap();
    login::save_login(
        &wrong_dir.join("config.json"),
        &host,
        user,
        "nope-secret-123",
    )
    .unwrap();
    let wrong = registries(RegistryOptions {
        docker_config_dir: Some(wrong_dir),
        ..Default::default()
    });
    let e = wrong
        .push_blob_bytes(&base, &img.config.descriptor, bytes_of(&img.config))
        .await
        .unwrap_err();
    println!("wrong: {e}");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(!e.to_string().contains("nope-secret-123"));

    // Good: push the base, then mount its layer into another repository.
    let good_dir = config(dir.path());
    login::save_login(&good_dir.join("config.json"), &host, user, pass).unwrap();
    let regs = registries(RegistryOptions {
        docker_config_dir: Some(good_dir),
        ..Default::default()
    });
    let progress = regs.progress().clone();
    crate::sink::registry::push(&Artifact::Image(img.clone()), &base, &regs, &progress)
        .await
        .unwrap();
    let outcome = regs
        .copy_blob(&base, &target, &img.layers[0].descriptor)
        .await
        .unwrap();
    assert_eq!(outcome, BlobOutcome::Mounted);
    assert_eq!(
        regs.fetch_manifest(&base).await.unwrap().digest,
        img.manifest_digest
    );
    // login against the token service: refused with a wrong password, accepted otherwise.
    let e = regs.login(&host, user, "wrong-pw-456").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("wrong-pw-456"));
    regs.login(&host, user, pass).await.unwrap();
    // Anonymous pull works with an anonymous pull token.
    assert_eq!(
        anon.fetch_manifest(&base).await.unwrap().digest,
        img.manifest_digest
    );
}
