//! The stage graph, read from the FROM lines and `--from` flags alone (with the global
//! ARGs), before any instruction is dispatched: each stage's base and platform, and which
//! stages the result needs. Only those are dispatched, as BuildKit does, so a stage the
//! target does not need can neither fail the build nor cost a base lookup; and the base
//! images are known without knowing anything about them.

use std::collections::HashMap;

use super::instructions::{self, Instruction, Located};
use super::{DfError, DockerfileOptions, expand, lexer, located};
use crate::image::{Platform, Reference};
use crate::recipe::{Base, RecipeError};

/// The Dockerfile parsed, with the global scope (ARGs before the first FROM).
pub struct Prepared {
    pub insts: Vec<Located>,
    pub esc: char,
    pub first_from: usize,
    pub build_args: HashMap<String, String>,
    pub global: HashMap<String, Option<String>>,
    pub builtins: HashMap<String, String>,
}

impl Prepared {
    /// A variable of the global scope (usable in FROM lines).
    pub fn global(&self, n: &str) -> Option<String> {
        match self.global.get(n) {
            Some(v) => v.clone(),
            None => self.builtins.get(n).cloned(),
        }
    }

    /// `s` expanded with the global scope.
    pub fn expand_global(&self, s: &str) -> Result<String, String> {
        expand::word(s, self.esc, &|n| self.global(n))
    }
}

/// One stage as its FROM line says.
pub struct PlannedStage {
    /// Instruction index of its FROM, and of the instruction after its last.
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub alias: Option<String>,
    pub base: Base,
    pub platform: Option<Platform>,
}

pub struct Plan {
    pub stages: Vec<PlannedStage>,
    /// The stage whose image is the result (`--target`, else the last).
    pub target: usize,
    /// Per stage: whether the result depends on it.
    pub needed: Vec<bool>,
}

/// Reads, lexes and parses the Dockerfile and evaluates the global ARGs.
pub fn prepare(opts: &DockerfileOptions, target: &Platform) -> Result<Prepared, RecipeError> {
    let at = |e: DfError| located(opts, e);
    let text = std::fs::read_to_string(&opts.dockerfile).map_err(|source| {
        RecipeError::DockerfileRead {
            path: opts.dockerfile.clone(),
            source,
        }
    })?;
    let lexed = lexer::lex(&text).map_err(at)?;
    let esc = lexed.directives.escape;
    let insts = lexed
        .instructions
        .iter()
        .map(|r| instructions::parse(r, esc))
        .collect::<Result<Vec<_>, _>>()
        .map_err(at)?;
    let Some(first_from) = insts
        .iter()
        .position(|l| matches!(l.inst, Instruction::From { .. }))
    else {
        let line = insts.first().map_or(1, |l| l.line);
        return Err(at(DfError {
            line,
            message: "no FROM instruction: a Dockerfile must start its first stage with FROM (use FROM scratch for an empty base)".into(),
        }));
    };
    let mut p = Prepared {
        insts,
        esc,
        first_from,
        build_args: opts.build_args.iter().cloned().collect(),
        global: HashMap::new(),
        builtins: builtin_args(target),
    };
    for i in 0..first_from {
        let loc = &p.insts[i];
        let Instruction::Arg(args) = &loc.inst else {
            return Err(at(DfError {
                line: loc.line,
                message: format!(
                    "{} must come after FROM: only ARG may precede the first FROM",
                    loc.keyword
                ),
            }));
        };
        for (name, default) in args.clone() {
            let value = match (p.build_args.get(&name), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(p.expand_global(&d).map_err(|message| {
                    at(DfError {
                        line: p.insts[i].line,
                        message,
                    })
                })?),
                // `ARG TARGETARCH` without a value takes the automatic one.
                (None, None) => p.builtins.get(&name).cloned(),
            };
            p.global.insert(name, value);
        }
    }
    Ok(p)
}

/// The stages, their bases, and which ones the result (`--target`) needs.
pub fn plan(p: &Prepared, opts: &DockerfileOptions) -> Result<Plan, RecipeError> {
    let at = |e: DfError| located(opts, e);
    let starts: Vec<usize> = (p.first_from..p.insts.len())
        .filter(|i| matches!(p.insts[*i].inst, Instruction::From { .. }))
        .collect();
    let all_names: Vec<String> = starts
        .iter()
        .map(|i| match &p.insts[*i].inst {
            Instruction::From { alias: Some(a), .. } => a.clone(),
            _ => String::new(),
        })
        .collect();
    let mut stages: Vec<PlannedStage> = Vec::new();
    for (si, start) in starts.iter().enumerate() {
        let from = &p.insts[*start];
        let Instruction::From {
            image,
            alias,
            platform,
        } = &from.inst
        else {
            continue;
        };
        let ferr = |message: String| {
            at(DfError {
                line: from.line,
                message,
            })
        };
        let image = p.expand_global(image).map_err(&ferr)?;
        if image.is_empty() {
            return Err(ferr(format!(
                "base name ({}) should not be blank",
                from.text
            )));
        }
        let platform = match platform {
            Some(s) => Some(
                Platform::parse(&p.expand_global(s).map_err(&ferr)?)
                    .map_err(|e| ferr(format!("--platform: {e}")))?,
            ),
            None => None,
        };
        if let Some(a) = alias {
            if stages.iter().any(|s| s.alias.as_ref() == Some(a)) {
                return Err(ferr(format!("duplicate stage name {a:?}")));
            }
            if !valid_stage_name(a) {
                return Err(ferr(format!(
                    "invalid stage name {a:?}: use lower-case letters, digits, '-', '_' and '.', starting with a letter"
                )));
            }
        }
        let lower = image.to_ascii_lowercase();
        let base = if lower == "scratch" {
            Base::Scratch
        } else if let Some(j) = stages
            .iter()
            .position(|s| s.alias.as_deref() == Some(lower.as_str()))
        {
            Base::Stage(j)
        } else if all_names[si..].contains(&lower) {
            return Err(ferr(format!(
                "FROM {image}: stage {image:?} is not defined before this one"
            )));
        } else {
            Base::Image(Reference::parse(&image).map_err(|e| ferr(format!("FROM {image}: {e}")))?)
        };
        stages.push(PlannedStage {
            start: *start,
            end: starts.get(si + 1).copied().unwrap_or(p.insts.len()),
            line: from.line,
            alias: alias.clone(),
            base,
            platform,
        });
    }
    let target = match &opts.target_stage {
        None => stages.len().saturating_sub(1),
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            stages
                .iter()
                .position(|s| s.alias.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| RecipeError::Flag {
                    flag: "--target".into(),
                    value: t.clone(),
                    reason: format!("no stage named {t:?} in {}", opts.dockerfile.display()),
                })?
        }
    };
    let needed = needed(p, &stages, target);
    Ok(Plan {
        stages,
        target,
        needed,
    })
}

/// The target and, transitively, the stages its FROM chain and `COPY/ADD --from` name. A
/// `--from` that cannot be read without the stage's own variables makes every earlier
/// stage needed (dispatching too much is safe; too little is not).
fn needed(p: &Prepared, stages: &[PlannedStage], target: usize) -> Vec<bool> {
    let mut need = vec![false; stages.len()];
    if stages.is_empty() {
        return need;
    }
    need[target] = true;
    for i in (0..=target).rev() {
        if !need[i] {
            continue;
        }
        if let Base::Stage(j) = stages[i].base {
            need[j] = true;
        }
        for loc in &p.insts[stages[i].start + 1..stages[i].end] {
            let (Instruction::Copy(a) | Instruction::Add(a)) = &loc.inst else {
                continue;
            };
            let Some(from) = &a.from else {
                continue;
            };
            match p.expand_global(from).map(|f| stage_ref(&f, stages, i)) {
                Ok(Some(j)) => need[j] = true,
                // An image reference.
                Ok(None) if !from.contains('$') => {}
                _ => need[..i].iter_mut().for_each(|n| *n = true),
            }
        }
    }
    need
}

/// The earlier stage `--from=<from>` names (alias or index), if it names one.
fn stage_ref(from: &str, stages: &[PlannedStage], current: usize) -> Option<usize> {
    let lower = from.to_ascii_lowercase();
    if let Some(j) = stages[..current]
        .iter()
        .position(|s| s.alias.as_deref() == Some(lower.as_str()))
    {
        return Some(j);
    }
    from.parse::<usize>().ok().filter(|j| *j < current)
}

/// TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT and the BUILD* ones for the host.
fn builtin_args(target: &Platform) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for (prefix, p) in [("TARGET", target.clone()), ("BUILD", Platform::host())] {
        let (os, arch, variant) = p.os_arch_variant();
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), os.to_string());
        m.insert(format!("{prefix}ARCH"), arch.to_string());
        m.insert(format!("{prefix}VARIANT"), variant.to_string());
    }
    m
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
}
