//! Typed instructions: what each keyword's arguments mean, still unexpanded (variables
//! are expanded when the instruction is dispatched, with the stage's values at that
//! point). Unknown keywords, unknown flags and malformed forms are refused here.

use super::DfError;
use super::lexer::{Heredoc, RawInstruction};
use super::words::{Flag, json_form, raw_words, take_flags};

/// CMD / ENTRYPOINT / HEALTHCHECK CMD arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// COPY and ADD arguments (flags still raw, expanded at dispatch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyArgs {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub exclude: Vec<String>,
    pub parents: bool,
    pub checksum: Option<String>,
    /// Sources then destination, raw.
    pub args: Vec<String>,
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK: `None` for `HEALTHCHECK NONE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
    pub test: Option<Command>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    /// Names with optional raw defaults.
    Arg(Vec<(String, Option<String>)>),
    /// Raw keys and values.
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Copy(CopyArgs),
    Add(CopyArgs),
    Workdir(String),
    User(String),
    StopSignal(String),
    /// Raw port words.
    Expose(String),
    Volume(Vec<String>),
    Healthcheck(Health),
    Shell(Vec<String>),
    /// The trigger as written after ONBUILD.
    OnBuild(String),
    Maintainer(String),
    Cmd(Command),
    Entrypoint(Command),
    /// Never executed: refused if its stage is needed.
    Run,
}

/// An instruction with the line it starts on and its text (for history entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub keyword: String,
    pub text: String,
    pub inst: Instruction,
}

pub const RUN_REFUSAL: &str = "RUN is not supported: ocibuild never executes anything. Do this step in your build tool (make, gradle, npm, a CI job…) and COPY its output into the image";

pub fn parse(raw: &RawInstruction, esc: char) -> Result<Located, DfError> {
    let err = |message: String| DfError {
        line: raw.line,
        message,
    };
    let (flags, rest) = take_flags(&raw.rest);
    let allowed: &[&str] = match raw.keyword.as_str() {
        "from" => &["platform"],
        "copy" => &["from", "chown", "chmod", "link", "exclude", "parents"],
        "add" => &[
            "chown",
            "chmod",
            "link",
            "exclude",
            "checksum",
            "keep-git-dir",
            "unpack",
        ],
        "healthcheck" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        "run" => {
            // Refused by the front end, and only in stages the build needs (BuildKit
            // skips stages the target does not depend on).
            return Ok(Located {
                line: raw.line,
                keyword: "RUN".into(),
                text: format!("RUN {}", raw.rest.trim()),
                inst: Instruction::Run,
            });
        }
        _ => &[],
    };
    // Only these instructions take flags; elsewhere `--x` is an ordinary argument.
    let (flags, rest) = if allowed.is_empty() {
        (Vec::new(), raw.rest.trim().to_string())
    } else {
        (flags, rest)
    };
    for f in &flags {
        if !allowed.contains(&f.name.as_str()) {
            return Err(err(format!(
                "unknown flag --{} for {}",
                f.name,
                raw.keyword.to_uppercase()
            )));
        }
    }
    let kw = raw.keyword.to_uppercase();
    let needs = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(err(format!("{kw} {what}")))
        }
    };
    let inst = match raw.keyword.as_str() {
        "from" => {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let (image, alias) = match w.as_slice() {
                [image] => (image.to_string(), None),
                [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    (image.to_string(), Some(name.to_ascii_lowercase()))
                }
                _ => {
                    return Err(err(
                        "FROM requires one image, optionally followed by AS <name>".into(),
                    ));
                }
            };
            Instruction::From {
                image,
                alias,
                platform: string_flag(&flags, "platform").map_err(err)?,
            }
        }
        "arg" => {
            let words = raw_words(&rest, esc);
            needs(!words.is_empty(), "requires at least one argument")?;
            let args = words
                .iter()
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (w.clone(), None),
                })
                .collect::<Vec<_>>();
            for (k, _) in &args {
                needs(
                    valid_name(k),
                    &format!("name {k:?} is not a valid variable name"),
                )?;
            }
            Instruction::Arg(args)
        }
        "env" | "label" => {
            let pairs = key_values(&rest, esc).map_err(|m| err(format!("{kw}: {m}")))?;
            if raw.keyword == "env" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            }
        }
        "copy" | "add" => {
            let args = match json_form(&rest).map_err(err)? {
                Some(v) => v,
                None => rest.split_whitespace().map(str::to_string).collect(),
            };
            let needed = if raw.heredocs.is_empty() { 2 } else { 1 };
            needs(
                args.len() >= needed,
                "requires at least one source and a destination",
            )?;
            let c = CopyArgs {
                from: string_flag(&flags, "from").map_err(err)?,
                chown: string_flag(&flags, "chown").map_err(err)?,
                chmod: string_flag(&flags, "chmod").map_err(err)?,
                exclude: flags
                    .iter()
                    .filter(|f| f.name == "exclude")
                    .map(|f| {
                        f.value
                            .clone()
                            .ok_or_else(|| err("--exclude needs a value".into()))
                    })
                    .collect::<Result<_, _>>()?,
                parents: bool_flag(&flags, "parents").map_err(err)?,
                checksum: string_flag(&flags, "checksum").map_err(err)?,
                args,
                heredocs: raw.heredocs.clone(),
            };
            bool_flag(&flags, "link").map_err(err)?;
            // Accepted by the flag parser so the refusal can say why, rather than being
            // ignored: the result would silently differ from Docker's.
            for f in ["unpack", "keep-git-dir"] {
                if flags.iter().any(|x| x.name == f) {
                    return Err(err(format!(
                        "ADD --{f} is not supported (local archives are always extracted, URLs never are; git sources are refused)"
                    )));
                }
            }
            if raw.keyword == "copy" {
                Instruction::Copy(c)
            } else {
                Instruction::Add(c)
            }
        }
        "workdir" | "user" | "stopsignal" => {
            needs(!rest.is_empty(), "requires exactly one argument")?;
            match raw.keyword.as_str() {
                "workdir" => Instruction::Workdir(rest),
                "user" => Instruction::User(rest),
                _ => Instruction::StopSignal(rest),
            }
        }
        "expose" => {
            needs(!rest.is_empty(), "requires at least one argument")?;
            Instruction::Expose(rest)
        }
        "volume" => {
            let v = match json_form(&rest).map_err(err)? {
                Some(v) => v,
                None => rest.split_whitespace().map(str::to_string).collect(),
            };
            needs(
                !v.is_empty() && v.iter().all(|s| !s.trim().is_empty()),
                "requires at least one non-empty path",
            )?;
            Instruction::Volume(v)
        }
        "shell" => {
            match json_form(&rest).map_err(err)? {
                Some(v) if !v.is_empty() => Instruction::Shell(v),
                _ => return Err(err(
                    "SHELL requires the arguments in JSON form, e.g. SHELL [\"/bin/bash\", \"-c\"]"
                        .into(),
                )),
            }
        }
        "cmd" | "entrypoint" => {
            let c = command(&rest).map_err(err)?;
            if raw.keyword == "cmd" {
                Instruction::Cmd(c)
            } else {
                Instruction::Entrypoint(c)
            }
        }
        "healthcheck" => Instruction::Healthcheck(health(&flags, &rest).map_err(err)?),
        "onbuild" => {
            let inner = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            match inner.as_str() {
                "" => return Err(err("ONBUILD requires an instruction".into())),
                "onbuild" => {
                    return Err(err(
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()
                    ));
                }
                "from" | "maintainer" => {
                    return Err(err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        inner.to_uppercase()
                    )));
                }
                _ => Instruction::OnBuild(rest),
            }
        }
        "maintainer" => {
            needs(!rest.is_empty(), "requires exactly one argument")?;
            Instruction::Maintainer(rest)
        }
        other => {
            return Err(err(format!(
                "unknown instruction: {} (ocibuild supports FROM, ARG, ENV, LABEL, COPY, ADD, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER, CMD, ENTRYPOINT)",
                other.to_uppercase()
            )));
        }
    };
    Ok(Located {
        line: raw.line,
        keyword: kw.clone(),
        text: format!("{kw} {}", raw.rest.trim()).trim_end().to_string(),
        inst,
    })
}

/// Variable names as Docker accepts them in ARG.
fn valid_name(k: &str) -> bool {
    !k.is_empty() && !k.contains(char::is_whitespace)
}

fn command(rest: &str) -> Result<Command, String> {
    Ok(match json_form(rest)? {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    })
}

/// `KEY=VALUE …` (new form) or `KEY VALUE with spaces` (legacy form), raw.
fn key_values(rest: &str, esc: char) -> Result<Vec<(String, String)>, String> {
    let words = raw_words(rest, esc);
    let Some(first) = words.first() else {
        return Err("requires at least one argument".into());
    };
    if !first.contains('=') {
        let mut parts = rest.trim().splitn(2, char::is_whitespace);
        let k = parts.next().unwrap_or("").to_string();
        let v = parts.next().map(str::trim_start).unwrap_or("");
        if v.is_empty() {
            return Err(format!(
                "{k} must have two arguments (KEY VALUE) or use KEY=VALUE"
            ));
        }
        return Ok(vec![(k, v.to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

fn string_flag(flags: &[Flag], name: &str) -> Result<Option<String>, String> {
    match flags.iter().rev().find(|f| f.name == name) {
        None => Ok(None),
        Some(Flag { value: Some(v), .. }) => Ok(Some(v.clone())),
        Some(_) => Err(format!(
            "missing a value on flag --{name} (write --{name}=VALUE)"
        )),
    }
}

fn bool_flag(flags: &[Flag], name: &str) -> Result<bool, String> {
    match flags.iter().rev().find(|f| f.name == name) {
        None => Ok(false),
        Some(Flag { value: None, .. }) => Ok(true),
        Some(Flag { value: Some(v), .. }) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("--{name}={v}: expected true or false")),
        },
    }
}

fn health(flags: &[Flag], rest: &str) -> Result<Health, String> {
    let mut words = rest.splitn(2, char::is_whitespace);
    let kind = words.next().unwrap_or("").to_ascii_uppercase();
    let cmd = words.next().unwrap_or("").trim();
    let mut h = Health {
        interval: string_flag(flags, "interval")?,
        timeout: string_flag(flags, "timeout")?,
        start_period: string_flag(flags, "start-period")?,
        start_interval: string_flag(flags, "start-interval")?,
        retries: string_flag(flags, "retries")?,
        test: None,
    };
    match kind.as_str() {
        "NONE" => {
            if !cmd.is_empty() || !flags.is_empty() {
                return Err("HEALTHCHECK NONE takes no other arguments".into());
            }
        }
        "CMD" => {
            if cmd.is_empty() {
                return Err("missing command after HEALTHCHECK CMD".into());
            }
            h.test = Some(command(cmd)?);
        }
        _ => return Err("HEALTHCHECK must be followed by CMD <command> or NONE".into()),
    }
    Ok(h)
}

#[cfg(test)]
#[path = "instructions_tests.rs"]
mod tests;
