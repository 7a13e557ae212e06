//! The state of a stage while its instructions are dispatched (Env, ARGs, WORKDIR, USER,
//! SHELL, what earlier layers created), and the config instructions: ENV, ARG, LABEL,
//! EXPOSE, USER, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER, CMD,
//! ENTRYPOINT and WORKDIR.

use std::collections::HashMap;

use serde_json::Value;

use super::instructions::{Command, Instruction, Located};
use super::made::Made;
use super::{BaseInfo, DfError, expand, health};
use crate::context::{DestFs, Probe, destfs::StandardDirs};
use crate::image::config::ConfigEdit;
use crate::image::{Platform, Reference};
use crate::layer::{EntryKind, LayerSpec};
use crate::recipe::Step;
use crate::recipe::overrides::parse_expose;

/// What the stage's root filesystem started from.
#[derive(Clone, Debug)]
pub enum Root {
    Empty,
    Image(Box<(Reference, Platform)>),
}

#[derive(Clone, Debug)]
pub struct StageState {
    /// Config Env, in order.
    pub env: Vec<(String, String)>,
    /// ARGs declared in this stage, with their values (None: declared without one).
    pub args: Vec<(String, Option<String>)>,
    pub workdir: String,
    pub user: String,
    pub shell: Vec<String>,
    /// ONBUILD triggers recorded so far (run by a later `FROM` of this stage).
    pub onbuild: Vec<String>,
    /// Paths created by this stage's layers.
    pub known: Made,
    /// Directories this stage's layers create although the base may have them (see
    /// [`crate::context::Resolved`]), and whether their layer may go when it is left
    /// empty (a WORKDIR's; a COPY keeps its layer, as Docker does); settled when the
    /// stage ends.
    pub tentative: Vec<(String, bool)>,
    pub root: Root,
}

/// Shared inputs of every dispatch.
pub struct Ctx<'a> {
    pub esc: char,
    pub build_args: &'a HashMap<String, String>,
    /// Global ARGs (declared before the first FROM) with their values.
    pub global: &'a HashMap<String, Option<String>>,
    /// Automatic platform args (TARGETARCH, …).
    pub builtins: &'a HashMap<String, String>,
    pub bases: &'a dyn BaseInfo,
}

impl StageState {
    /// The starting state on top of `root`, whose config (if known) is `cfg`.
    pub fn new(root: Root, cfg: Option<&Value>) -> StageState {
        let c = cfg.and_then(|v| v.get("config"));
        let strings = |key: &str| -> Vec<String> {
            c.and_then(|c| c.get(key))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |key: &str| {
            c.and_then(|c| c.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let env = strings("Env")
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect();
        let shell = strings("Shell");
        let workdir = text("WorkingDir");
        StageState {
            env,
            args: Vec::new(),
            workdir: if workdir.is_empty() {
                "/".into()
            } else {
                workdir
            },
            user: text("User"),
            shell: if shell.is_empty() {
                vec!["/bin/sh".into(), "-c".into()]
            } else {
                shell
            },
            onbuild: strings("OnBuild"),
            known: Made::default(),
            tentative: Vec::new(),
            root,
        }
    }

    /// A variable's value: ENV wins over ARG, as in Docker.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }

    pub fn word(&self, s: &str, esc: char) -> Result<String, String> {
        expand::word(s, esc, &|n| self.lookup(n))
    }

    pub fn words(&self, s: &str, esc: char) -> Result<Vec<String>, String> {
        expand::words(s, esc, &|n| self.lookup(n))
    }

    /// Records what a layer created, for later destination decisions.
    pub fn record(&mut self, layer: &LayerSpec) {
        self.known.record(&layer.entries);
    }

    /// The destination filesystem as known to this stage.
    pub fn dest_fs<'a>(&'a self, bases: &'a dyn BaseInfo) -> StageFs<'a> {
        StageFs { state: self, bases }
    }

    /// An absolute in-image path for `p`, relative ones against WORKDIR; a trailing `/`
    /// (or a final `.`) is kept as a `/` because it means "a directory".
    pub fn absolute(&self, p: &str) -> String {
        let dir =
            p.ends_with('/') || p == "." || p.ends_with("/.") || p == ".." || p.ends_with("/..");
        let joined = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{}/{p}", self.workdir.trim_end_matches('/'))
        };
        let cleaned = clean_abs(&joined);
        if dir && cleaned != "/" {
            format!("{cleaned}/")
        } else {
            cleaned
        }
    }
}

/// `path.Clean` of an absolute path (`..` stops at `/`).
pub fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// [`DestFs`] of a stage: what its layers created, then the base (probe, or standard
/// directories for an image, nothing for scratch).
pub struct StageFs<'a> {
    state: &'a StageState,
    bases: &'a dyn BaseInfo,
}

impl DestFs for StageFs<'_> {
    fn probe(&self, path: &str) -> Probe {
        if path.is_empty() {
            return Probe::Dir;
        }
        if let Some(dir) = self.state.known.get(path) {
            return if dir { Probe::Dir } else { Probe::NotDir };
        }
        match &self.state.root {
            Root::Empty => Probe::Missing,
            Root::Image(img) => match self.bases.probe(&img.0, &img.1, path) {
                // A base's file list is there only if some build needed it and the cache
                // kept it: "missing" from a list must decide what "not known" does, or
                // the image would depend on the cache (a directory guessed and dropped
                // without a list, created with one). Only answers a build would have
                // fetched the list for (a directory, a file) are taken from it.
                Probe::Unknown | Probe::Missing => StandardDirs.probe(path),
                known => known,
            },
        }
    }

    fn needs(&self, path: &str) {
        if let (None, Root::Image(img)) = (self.state.known.get(path), &self.state.root) {
            self.bases.needs(&img.0, &img.1, path);
        }
    }
}

impl StageState {
    /// Settles the stage's tentative directories once all its steps are known. One that
    /// a later layer fills (and that has the default 0755 root:root) loses its entry:
    /// every extractor keeps an existing directory and creates a missing parent as 0755
    /// root:root, which is Docker's result either way (a layer left empty goes). The
    /// others need the base's answer, asked for through `bases`.
    pub fn settle_tentative(&mut self, steps: &mut Vec<Step>, bases: &dyn BaseInfo) {
        let mut emptied = Vec::new();
        for (path, removable) in std::mem::take(&mut self.tentative) {
            let holder = steps.iter().position(
                |s| matches!(s, Step::Layer(l) if l.entries.iter().any(|e| e.path == path)),
            );
            let Some(i) = holder else { continue };
            let prefix = format!("{path}/");
            let filled = steps[i + 1..].iter().any(|s| {
                matches!(s, Step::Layer(l) if l.entries.iter().any(|e| e.path.starts_with(&prefix)))
            });
            let Step::Layer(layer) = &mut steps[i] else {
                continue;
            };
            let default = layer.entries.iter().any(|e| {
                e.path == path
                    && matches!(e.kind, EntryKind::Dir)
                    && (e.mode, e.uid, e.gid) == (0o755, 0, 0)
            });
            if filled && default {
                layer.entries.make_mut().retain(|e| e.path != path);
                if removable && layer.entries.is_empty() {
                    emptied.push(i);
                }
            } else if let Root::Image(img) = &self.root {
                // The layer was recorded already, so ask the base directly (the stage's
                // view would answer from that record).
                bases.needs(&img.0, &img.1, &path);
            }
        }
        emptied.sort_unstable();
        emptied.dedup();
        for i in emptied.into_iter().rev() {
            steps.remove(i);
        }
    }
}

/// Dispatches a config instruction (everything but FROM, COPY, ADD, RUN), appending steps.
pub fn dispatch(
    ctx: &Ctx<'_>,
    st: &mut StageState,
    loc: &Located,
    steps: &mut Vec<Step>,
) -> Result<(), DfError> {
    let err = |message: String| DfError {
        line: loc.line,
        message,
    };
    let esc = ctx.esc;
    let mut edits: Vec<ConfigEdit> = Vec::new();
    match &loc.inst {
        Instruction::Arg(args) => {
            for (name, default) in args {
                let value = match ctx.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => match default {
                        Some(d) => Some(st.word(d, esc).map_err(&err)?),
                        None => match ctx.global.get(name) {
                            Some(v) => v.clone(),
                            None => ctx.builtins.get(name).cloned(),
                        },
                    },
                };
                st.args.push((name.clone(), value));
            }
        }
        Instruction::Env(pairs) => {
            // Every value is expanded with the variables as they were before the line.
            let mut set = Vec::new();
            for (k, v) in pairs {
                let key = st.word(k, esc).map_err(&err)?;
                if key.is_empty() {
                    return Err(err("ENV names can not be blank".into()));
                }
                set.push((key, st.word(v, esc).map_err(&err)?));
            }
            for (k, v) in set {
                st.env.retain(|(e, _)| *e != k);
                st.env.push((k.clone(), v.clone()));
                edits.push(ConfigEdit::Env(k, v));
            }
        }
        Instruction::Label(pairs) => {
            for (k, v) in pairs {
                let key = st.word(k, esc).map_err(&err)?;
                if key.is_empty() {
                    return Err(err("LABEL names can not be blank".into()));
                }
                edits.push(ConfigEdit::Label(key, st.word(v, esc).map_err(&err)?));
            }
        }
        Instruction::Expose(raw) => {
            for p in st.words(raw, esc).map_err(&err)? {
                let ports = parse_expose(&p).map_err(|_| {
                    err(format!(
                        "EXPOSE {p}: expected PORT[/PROTO] or FROM-TO[/PROTO] (tcp, udp, sctp)"
                    ))
                })?;
                edits.extend(ports.into_iter().map(ConfigEdit::Expose));
            }
        }
        Instruction::User(raw) => {
            let u = st.word(raw, esc).map_err(&err)?;
            if u.is_empty() || u.contains(char::is_whitespace) {
                return Err(err(format!(
                    "USER {u:?}: expected USER[:GROUP] or UID[:GID]"
                )));
            }
            st.user = u.clone();
            edits.push(ConfigEdit::User(u));
        }
        Instruction::Volume(items) => {
            for v in items {
                let v = st.word(v, esc).map_err(&err)?;
                if v.trim().is_empty() {
                    return Err(err("VOLUME specified can not be an empty string".into()));
                }
                edits.push(ConfigEdit::Volume(v));
            }
        }
        Instruction::StopSignal(raw) => {
            let s = st.word(raw, esc).map_err(&err)?;
            health::check_signal(&s).map_err(&err)?;
            edits.push(ConfigEdit::StopSignal(s));
        }
        Instruction::Healthcheck(h) => {
            edits.push(ConfigEdit::Healthcheck(health::to_json(h).map_err(&err)?))
        }
        Instruction::Shell(s) => {
            st.shell = s.clone();
            edits.push(ConfigEdit::Shell(s.clone()));
        }
        Instruction::OnBuild(t) => {
            st.onbuild.push(t.clone());
            edits.push(ConfigEdit::OnBuild(t.clone()));
        }
        Instruction::Maintainer(m) => edits.push(ConfigEdit::Author(m.clone())),
        Instruction::Cmd(c) => edits.push(ConfigEdit::Cmd(Some(command(st, c)))),
        Instruction::Entrypoint(c) => edits.push(ConfigEdit::Entrypoint(Some(command(st, c)))),
        Instruction::Workdir(raw) => return super::workdir::dispatch(ctx, st, loc, raw, steps),
        Instruction::From { .. }
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Run => {
            return Err(err(format!(
                "internal: {} dispatched as a config instruction",
                loc.keyword
            )));
        }
    }
    push_edits(steps, edits, &loc.text);
    Ok(())
}

/// Config steps, the history entry on the first (one entry per instruction).
pub fn push_edits(steps: &mut Vec<Step>, edits: Vec<ConfigEdit>, text: &str) {
    for (i, edit) in edits.into_iter().enumerate() {
        steps.push(Step::Config {
            edit,
            history: (i == 0).then(|| text.to_string()),
        });
    }
}

/// Exec form as is; shell form run by the current SHELL.
fn command(st: &StageState, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = st.shell.clone();
            v.push(s.clone());
            v
        }
    }
}
