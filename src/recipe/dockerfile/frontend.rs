//! From instructions to a [`Recipe`]: global ARGs and automatic platform args for FROM,
//! stages and their bases (`scratch`, an image, an earlier stage), base ONBUILD
//! triggers, `--target`, the RUN refusal for stages the build needs, and the CLI
//! overrides after the last instruction.

use std::collections::HashMap;

use super::copy::{self, Context, Stages};
use super::instructions::{self, Instruction, Located, RUN_REFUSAL};
use super::stage::{self, Ctx, Root, StageState};
use super::{BaseInfo, DfError, DockerfileOptions, expand, lexer, located};
use crate::context::Ignore;
use crate::image::config::ConfigEdit;
use crate::image::{Platform, Reference};
use crate::recipe::{Base, CopySource, Recipe, RecipeError, Stage, Step};

/// The PATH BuildKit sets for a stage built `FROM scratch`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn build(
    opts: &DockerfileOptions,
    target: &Platform,
    bases: &dyn BaseInfo,
) -> Result<Recipe, RecipeError> {
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
    let first_from = insts
        .iter()
        .position(|l| matches!(l.inst, Instruction::From { .. }));
    let Some(first_from) = first_from else {
        let line = insts.first().map_or(1, |l| l.line);
        return Err(at(DfError {
            line,
            message: "no FROM instruction: a Dockerfile must start its first stage with FROM (use FROM scratch for an empty base)".into(),
        }));
    };
    let build_args: HashMap<String, String> = opts.build_args.iter().cloned().collect();
    let builtins = builtin_args(target);
    // Global scope: ARGs before the first FROM (usable in FROM lines) and built-ins.
    let mut global: HashMap<String, Option<String>> = HashMap::new();
    for loc in &insts[..first_from] {
        let Instruction::Arg(args) = &loc.inst else {
            return Err(at(DfError {
                line: loc.line,
                message: format!(
                    "{} must come after FROM: only ARG may precede the first FROM",
                    loc.keyword
                ),
            }));
        };
        for (name, default) in args {
            let value = match build_args.get(name) {
                Some(v) => Some(v.clone()),
                None => match default {
                    Some(d) => Some(
                        expand::word(d, esc, &|n| global_lookup(&global, &builtins, n)).map_err(
                            |message| {
                                at(DfError {
                                    line: loc.line,
                                    message,
                                })
                            },
                        )?,
                    ),
                    None => None,
                },
            };
            global.insert(name.clone(), value);
        }
    }
    let ignore = Ignore::for_build(&opts.context, Some(&opts.dockerfile))?;
    let ctx = Ctx {
        esc,
        build_args: &build_args,
        global: &global,
        builtins: &builtins,
        bases,
    };
    // Stage boundaries and names, known up front for `--from` errors.
    let starts: Vec<usize> = (first_from..insts.len())
        .filter(|i| matches!(insts[*i].inst, Instruction::From { .. }))
        .collect();
    let all_names: Vec<String> = starts
        .iter()
        .map(|i| match &insts[*i].inst {
            Instruction::From { alias: Some(a), .. } => a.clone(),
            _ => String::new(),
        })
        .collect();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut finals: Vec<StageState> = Vec::new();
    // Per stage: the first RUN's line, and the trigger text when it came from the base's
    // ONBUILD.
    let mut runs: Vec<Option<(usize, Option<String>)>> = Vec::new();
    for (si, start) in starts.iter().enumerate() {
        let end = starts.get(si + 1).copied().unwrap_or(insts.len());
        let from = &insts[*start];
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
        let glob = |s: &str| {
            expand::word(s, esc, &|n| global_lookup(&global, &builtins, n)).map_err(&ferr)
        };
        let image = glob(image)?;
        if image.is_empty() {
            return Err(ferr(format!(
                "base name ({}) should not be blank",
                from.text
            )));
        }
        let stage_platform = match platform {
            Some(p) => {
                Some(Platform::parse(&glob(p)?).map_err(|e| ferr(format!("--platform: {e}")))?)
            }
            None => None,
        };
        if let Some(a) = alias {
            if names.iter().any(|(n, _)| n == a) {
                return Err(ferr(format!("duplicate stage name {a:?}")));
            }
            if !valid_stage_name(a) {
                return Err(ferr(format!(
                    "invalid stage name {a:?}: use lower-case letters, digits, '-', '_' and '.', starting with a letter"
                )));
            }
        }
        let lower = image.to_ascii_lowercase();
        let (base, mut state) = if lower == "scratch" {
            (Base::Scratch, StageState::new(Root::Empty, None))
        } else if let Some((_, j)) = names.iter().find(|(n, _)| *n == lower) {
            let mut s = finals[*j].clone();
            s.args.clear();
            (Base::Stage(*j), s)
        } else if all_names[si..].contains(&lower) {
            return Err(ferr(format!(
                "FROM {image}: stage {image:?} is not defined before this one"
            )));
        } else {
            let r = Reference::parse(&image).map_err(|e| ferr(format!("FROM {image}: {e}")))?;
            let p = stage_platform.clone().unwrap_or_else(|| target.clone());
            let cfg = bases.config(&r, &p);
            (
                Base::Image(r.clone()),
                StageState::new(Root::Image(Box::new((r, p))), cfg.as_ref()),
            )
        };
        let mut steps: Vec<Step> = Vec::new();
        if base == Base::Scratch {
            // BuildKit gives a scratch stage the default PATH.
            state.env.push(("PATH".into(), DEFAULT_PATH.into()));
            steps.push(Step::Config {
                edit: ConfigEdit::Env("PATH".into(), DEFAULT_PATH.into()),
                history: None,
            });
        }
        let mut run_line = None;
        // The base's ONBUILD triggers run first, as if written right after FROM.
        let triggers = std::mem::take(&mut state.onbuild);
        let stage_refs = Stages {
            names: &names,
            current: si,
            later: &all_names[si + 1..],
        };
        let context = Context {
            root: &opts.context,
            ignore: &ignore,
        };
        if !triggers.is_empty() {
            steps.push(Step::Config {
                edit: ConfigEdit::ClearOnBuild,
                history: None,
            });
        }
        for t in &triggers {
            let loc = trigger(t, from.line, esc).map_err(at)?;
            if matches!(loc.inst, Instruction::Run) {
                run_line = run_line.or(Some((from.line, Some(t.clone()))));
                continue;
            }
            dispatch(&ctx, &mut state, &loc, &mut steps, &stage_refs, &context).map_err(at)?;
        }
        for loc in &insts[start + 1..end] {
            if matches!(loc.inst, Instruction::Run) {
                run_line = run_line.or(Some((loc.line, None)));
                continue;
            }
            dispatch(&ctx, &mut state, loc, &mut steps, &stage_refs, &context).map_err(at)?;
        }
        if let Some(a) = alias {
            names.push((a.clone(), si));
        }
        stages.push(Stage {
            name: alias.clone(),
            base,
            steps,
            platform: stage_platform,
        });
        finals.push(state);
        runs.push(run_line);
    }
    if let Some(t) = &opts.target_stage {
        let lower = t.to_ascii_lowercase();
        let i = names
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, i)| *i)
            .ok_or_else(|| RecipeError::Flag {
                flag: "--target".into(),
                value: t.clone(),
                reason: format!("no stage named {t:?} in {}", opts.dockerfile.display()),
            })?;
        stages.truncate(i + 1);
    }
    for i in needed(&stages) {
        if let Some((line, trigger)) = &runs[i] {
            let message = match trigger {
                None => RUN_REFUSAL.to_string(),
                Some(t) => format!(
                    "the base image's ONBUILD trigger {t:?} would run a command; {RUN_REFUSAL}"
                ),
            };
            return Err(at(DfError {
                line: *line,
                message,
            }));
        }
    }
    if let Some(last) = stages.last_mut() {
        for edit in opts.overrides.edits()? {
            last.steps.push(Step::Config {
                edit,
                history: None,
            });
        }
    }
    Ok(Recipe {
        stages,
        context: opts.context.clone(),
        dockerfile: Some(opts.dockerfile.clone()),
        annotations: opts.overrides.annotations()?,
    })
}

fn dispatch(
    ctx: &Ctx<'_>,
    st: &mut StageState,
    loc: &Located,
    steps: &mut Vec<Step>,
    stages: &Stages<'_>,
    context: &Context<'_>,
) -> Result<(), DfError> {
    match &loc.inst {
        Instruction::Copy(a) => {
            steps.push(copy::dispatch(ctx, st, loc, a, false, stages, context)?)
        }
        Instruction::Add(a) => steps.push(copy::dispatch(ctx, st, loc, a, true, stages, context)?),
        Instruction::From { .. } => {
            return Err(DfError {
                line: loc.line,
                message: "internal: nested FROM".into(),
            });
        }
        _ => stage::dispatch(ctx, st, loc, steps)?,
    }
    Ok(())
}

/// Parses an ONBUILD trigger of the base; errors point at the FROM line.
fn trigger(text: &str, line: usize, esc: char) -> Result<Located, DfError> {
    let lexed = lexer::lex(text).map_err(|e| DfError {
        line,
        message: format!("base image ONBUILD trigger {text:?}: {}", e.message),
    })?;
    let [raw] = lexed.instructions.as_slice() else {
        return Err(DfError {
            line,
            message: format!("base image ONBUILD trigger {text:?} is not one instruction"),
        });
    };
    let mut loc = instructions::parse(raw, esc).map_err(|e| DfError {
        line,
        message: format!("base image ONBUILD trigger {text:?}: {}", e.message),
    })?;
    loc.line = line;
    Ok(loc)
}

/// Stages the last one depends on (through FROM and `COPY --from`), ascending.
fn needed(stages: &[Stage]) -> Vec<usize> {
    let Some(last) = stages.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut need = vec![false; stages.len()];
    need[last] = true;
    for i in (0..=last).rev() {
        if !need[i] {
            continue;
        }
        if let Base::Stage(j) = stages[i].base {
            need[j] = true;
        }
        for s in &stages[i].steps {
            if let Step::Copy(c) = s
                && let CopySource::Stage(j) = c.source
            {
                need[j] = true;
            }
        }
    }
    (0..=last).filter(|i| need[*i]).collect()
}

fn global_lookup(
    global: &HashMap<String, Option<String>>,
    builtins: &HashMap<String, String>,
    n: &str,
) -> Option<String> {
    match global.get(n) {
        Some(v) => v.clone(),
        None => builtins.get(n).cloned(),
    }
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

#[cfg(test)]
#[path = "frontend_tests.rs"]
mod tests;
