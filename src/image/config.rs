//! Image configs as JSON values: the scratch config, ordered edits with Docker's semantics,
//! and appending layers with their history.
//!
//! The base config is never deserialized into a fixed struct, so fields this tool does not
//! know (Healthcheck, OnBuild, Shell, ArgsEscaped, vendor extensions) survive unchanged.

use serde_json::{Map, Value, json};

use super::{Digest, ImageError, Platform};

/// One change to an image config, in the order the recipe lists them.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigEdit {
    /// Set an environment variable (replacing one with the same key).
    Env(String, String),
    Label(String, String),
    /// `None` clears it (`ENTRYPOINT []`). Setting an entrypoint clears a CMD inherited from
    /// the base unless a CMD was set earlier in the same recipe (Docker's rule).
    Entrypoint(Option<Vec<String>>),
    Cmd(Option<Vec<String>>),
    WorkingDir(String),
    User(String),
    /// `port/proto`, proto already defaulted to tcp.
    Expose(String),
    Volume(String),
    StopSignal(String),
    /// Docker's `Healthcheck` object as written to the config (or `{"Test":["NONE"]}`).
    Healthcheck(Value),
    Shell(Vec<String>),
    OnBuild(String),
    /// Drops the base's ONBUILD triggers once they have run: Docker does not pass them on
    /// to the grandchild image.
    ClearOnBuild,
    /// Top-level `author` (MAINTAINER).
    Author(String),
}

/// The config of an empty (`scratch`) image for `platform`.
pub fn scratch(platform: &Platform) -> Value {
    let mut cfg = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    if let (Some(v), Some(obj)) = (&platform.variant, cfg.as_object_mut()) {
        obj.insert("variant".into(), json!(v));
    }
    cfg
}

/// Parses a base config blob, insisting on an object with a `rootfs`.
pub fn parse(bytes: &[u8]) -> Result<Value, ImageError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ImageError::Json {
        what: "image config".into(),
        reason: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(ImageError::Json {
            what: "image config".into(),
            reason: "not a JSON object".into(),
        });
    }
    Ok(v)
}

/// The platform a config declares.
pub fn platform_of(cfg: &Value) -> Option<Platform> {
    let os = cfg.get("os")?.as_str()?;
    let arch = cfg.get("architecture")?.as_str()?;
    let variant = cfg.get("variant").and_then(|v| v.as_str());
    Some(Platform::new(os, arch, variant))
}

/// Applies `edits` in order. Returns an error only for values Docker would reject too.
pub fn apply(cfg: &mut Value, edits: &[ConfigEdit]) -> Result<(), ImageError> {
    let mut editor = Editor::default();
    for edit in edits {
        editor.apply(cfg, edit)?;
    }
    Ok(())
}

/// Applies edits one at a time while remembering what the recipe has set so far, for
/// rules that depend on it (ENTRYPOINT clears an inherited CMD, not one set earlier in the
/// same stage). Use one editor per stage.
#[derive(Clone, Debug, Default)]
pub struct Editor {
    cmd_set: bool,
}

impl Editor {
    pub fn apply(&mut self, cfg: &mut Value, edit: &ConfigEdit) -> Result<(), ImageError> {
        apply_one(cfg, edit, &mut self.cmd_set)
    }
}

fn apply_one(cfg: &mut Value, edit: &ConfigEdit, cmd_set: &mut bool) -> Result<(), ImageError> {
    if let ConfigEdit::Author(a) = edit {
        root(cfg).insert("author".into(), json!(a));
        return Ok(());
    }
    let c = container_config(cfg);
    match edit {
        ConfigEdit::Env(k, v) => set_env(c, k, v),
        ConfigEdit::Label(k, v) => {
            object_field(c, "Labels").insert(k.clone(), json!(v));
        }
        ConfigEdit::Entrypoint(ep) => {
            c.insert("Entrypoint".into(), json!(ep));
            if !*cmd_set {
                c.insert("Cmd".into(), Value::Null);
            }
        }
        ConfigEdit::Cmd(cmd) => {
            c.insert("Cmd".into(), json!(cmd));
            *cmd_set = true;
        }
        ConfigEdit::WorkingDir(d) => {
            c.insert("WorkingDir".into(), json!(d));
        }
        ConfigEdit::User(u) => {
            c.insert("User".into(), json!(u));
        }
        ConfigEdit::Expose(p) => {
            object_field(c, "ExposedPorts").insert(p.clone(), json!({}));
        }
        ConfigEdit::Volume(v) => {
            object_field(c, "Volumes").insert(v.clone(), json!({}));
        }
        ConfigEdit::StopSignal(s) => {
            c.insert("StopSignal".into(), json!(s));
        }
        ConfigEdit::Healthcheck(h) => {
            c.insert("Healthcheck".into(), h.clone());
        }
        ConfigEdit::Shell(s) => {
            c.insert("Shell".into(), json!(s));
        }
        ConfigEdit::OnBuild(o) => {
            let list = c.entry("OnBuild").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(a) = list.as_array_mut() {
                a.push(json!(o));
            }
        }
        ConfigEdit::ClearOnBuild => {
            c.remove("OnBuild");
        }
        ConfigEdit::Author(_) => {}
    }
    Ok(())
}

/// Appends a layer: its diffID to `rootfs.diff_ids` and a history entry.
pub fn append_layer(cfg: &mut Value, diff_id: &Digest, created: &str, created_by: &str) {
    let r = root(cfg);
    let rootfs = r
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if !rootfs.is_object() {
        *rootfs = json!({"type": "layers", "diff_ids": []});
    }
    if let Some(obj) = rootfs.as_object_mut() {
        let ids = obj.entry("diff_ids").or_insert_with(|| json!([]));
        if !ids.is_array() {
            *ids = json!([]);
        }
        if let Some(a) = ids.as_array_mut() {
            a.push(json!(diff_id.as_str()));
        }
    }
    push_history(
        cfg,
        json!({"created": created, "created_by": created_by, "comment": "ocibuild"}),
    );
}

/// Adds a history entry for a metadata-only step (`empty_layer: true`).
pub fn append_empty_history(cfg: &mut Value, created: &str, created_by: &str) {
    push_history(
        cfg,
        json!({"created": created, "created_by": created_by, "comment": "ocibuild", "empty_layer": true}),
    );
}

/// Sets the top-level `created` time and the platform fields.
pub fn finish(cfg: &mut Value, created: &str, platform: &Platform) {
    let r = root(cfg);
    r.insert("created".into(), json!(created));
    r.insert("os".into(), json!(platform.os));
    r.insert("architecture".into(), json!(platform.architecture));
    match &platform.variant {
        Some(v) => r.insert("variant".into(), json!(v)),
        None => r.remove("variant"),
    };
    // Docker-era fields that describe the build container, not the image; a stale copy of
    // the base's would be misleading.
    r.remove("container");
    r.remove("container_config");
}

/// Number of diffIDs (layers) a config lists.
pub fn layer_count(cfg: &Value) -> usize {
    cfg.pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map_or(0, |a| a.len())
}

/// The value of an environment variable in the config, if set.
pub fn env_value<'a>(cfg: &'a Value, key: &str) -> Option<&'a str> {
    cfg.pointer("/config/Env")?
        .as_array()?
        .iter()
        .find_map(|e| {
            let s = e.as_str()?;
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (k == key).then_some(v)
        })
}

fn push_history(cfg: &mut Value, entry: Value) {
    let h = root(cfg).entry("history").or_insert_with(|| json!([]));
    if !h.is_array() {
        *h = json!([]);
    }
    if let Some(a) = h.as_array_mut() {
        a.push(entry);
    }
}

fn root(cfg: &mut Value) -> &mut Map<String, Value> {
    if !cfg.is_object() {
        *cfg = json!({});
    }
    match cfg {
        Value::Object(m) => m,
        // Unreachable: replaced by an object just above.
        _ => unreachable_object(),
    }
}

fn container_config(cfg: &mut Value) -> &mut Map<String, Value> {
    let c = root(cfg).entry("config").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    match c {
        Value::Object(m) => m,
        _ => unreachable_object(),
    }
}

fn object_field<'a>(c: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let f = c.entry(key).or_insert_with(|| json!({}));
    if !f.is_object() {
        *f = json!({});
    }
    match f {
        Value::Object(m) => m,
        _ => unreachable_object(),
    }
}

#[allow(clippy::panic)]
fn unreachable_object() -> ! {
    // Every caller has just stored an object in the slot it matches on.
    unreachable!("slot was just set to a JSON object")
}

fn set_env(c: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    let env = c.entry("Env").or_insert_with(|| json!([]));
    if !env.is_array() {
        *env = json!([]);
    }
    if let Some(list) = env.as_array_mut() {
        let pos = list.iter().position(|e| {
            e.as_str()
                .map(|s| s.split_once('=').map_or(s, |(k, _)| k) == key)
                .unwrap_or(false)
        });
        match pos {
            Some(i) => list[i] = json!(entry),
            None => list.push(json!(entry)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_merge_and_keep_unknown_fields() {
        let mut cfg: Value = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=1"],
               "Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"]},"Labels":{"x":"1"}},
               "rootfs":{"type":"layers","diff_ids":[]},"vendor":{"keep":true}}"#,
        )
        .unwrap();
        apply(
            &mut cfg,
            &[
                ConfigEdit::Env("A".into(), "2".into()),
                ConfigEdit::Env("B".into(), "3".into()),
                ConfigEdit::Label("team".into(), "core".into()),
                ConfigEdit::Entrypoint(Some(vec!["/srv/app".into()])),
                ConfigEdit::Expose("8080/tcp".into()),
            ],
        )
        .unwrap();
        assert_eq!(cfg["config"]["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(cfg["config"]["Labels"], json!({"x": "1", "team": "core"}));
        assert_eq!(
            cfg["config"]["Cmd"],
            Value::Null,
            "inherited CMD cleared by ENTRYPOINT"
        );
        assert_eq!(cfg["config"]["Healthcheck"]["Test"][1], "true");
        assert_eq!(cfg["vendor"]["keep"], true);
        assert_eq!(cfg["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(env_value(&cfg, "B"), Some("3"));
    }

    #[test]
    fn cmd_set_before_entrypoint_survives() {
        let mut cfg = scratch(&Platform::parse("linux/arm/v7").unwrap());
        apply(
            &mut cfg,
            &[
                ConfigEdit::Cmd(Some(vec!["run".into()])),
                ConfigEdit::Entrypoint(Some(vec!["/app".into()])),
            ],
        )
        .unwrap();
        assert_eq!(cfg["config"]["Cmd"], json!(["run"]));
        assert_eq!(cfg["variant"], "v7");
    }

    #[test]
    fn append_layer_records_history() {
        let mut cfg = scratch(&Platform::parse("linux/amd64").unwrap());
        let d = Digest::of(b"x");
        append_layer(&mut cfg, &d, "1970-01-01T00:00:00Z", "COPY . /app");
        append_empty_history(&mut cfg, "1970-01-01T00:00:00Z", "ENV A=1");
        assert_eq!(layer_count(&cfg), 1);
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["history"][1]["empty_layer"], true);
    }
}
