//! From instructions to a [`Recipe`]: global ARGs and automatic platform args for FROM,
//! stages and their bases (`scratch`, an image, an earlier stage), base ONBUILD
//! triggers, `--target`, the RUN refusal for stages the build needs, and the CLI
//! overrides after the last instruction.

use super::copy::{self, Context, Stages};
use super::instructions::{self, Instruction, Located, RUN_REFUSAL};
use super::stage::{self, Ctx, Root, StageState};
use super::{BaseInfo, DfError, DockerfileOptions, lexer, located, plan};
use crate::context::Ignore;
use crate::image::Platform;
use crate::image::config::ConfigEdit;
use crate::recipe::{Base, CopySource, Recipe, RecipeError, Stage, Step};

/// The PATH BuildKit sets for a stage built `FROM scratch`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn build(
    opts: &DockerfileOptions,
    target: &Platform,
    bases: &dyn BaseInfo,
) -> Result<Recipe, RecipeError> {
    let at = |e: DfError| located(opts, e);
    let prepared = plan::prepare(opts, target)?;
    let plan = plan::plan(&prepared, opts)?;
    let esc = prepared.esc;
    let ignore = Ignore::for_build(&opts.context, Some(&opts.dockerfile))?;
    let ctx = Ctx {
        esc,
        build_args: &prepared.build_args,
        global: &prepared.global,
        builtins: &prepared.builtins,
        bases,
    };
    let all_names: Vec<String> = plan
        .stages
        .iter()
        .map(|s| s.alias.clone().unwrap_or_default())
        .collect();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut finals: Vec<StageState> = Vec::new();
    // Per stage: the first RUN's line, and the trigger text when it came from the base's
    // ONBUILD.
    let mut runs: Vec<Option<(usize, Option<String>)>> = Vec::new();
    for (si, planned) in plan.stages.iter().enumerate().take(plan.target + 1) {
        let name = planned.alias.clone();
        if !plan.needed[si] {
            // Kept as an empty placeholder so stage indices stay those of the file.
            if let Some(a) = &name {
                names.push((a.clone(), si));
            }
            stages.push(Stage {
                name,
                base: Base::Scratch,
                steps: Vec::new(),
                platform: None,
                from_line: Some(planned.line),
            });
            finals.push(StageState::new(Root::Empty, None));
            runs.push(None);
            continue;
        }
        let (mut state, base) = match &planned.base {
            Base::Scratch => (StageState::new(Root::Empty, None), Base::Scratch),
            Base::Stage(j) => {
                let mut s = finals
                    .get(*j)
                    .cloned()
                    .unwrap_or_else(|| StageState::new(Root::Empty, None));
                s.args.clear();
                (s, Base::Stage(*j))
            }
            Base::Image(r) => {
                let p = planned.platform.clone().unwrap_or_else(|| target.clone());
                let cfg = bases.config(r, &p);
                (
                    StageState::new(Root::Image(Box::new((r.clone(), p))), cfg.as_ref()),
                    Base::Image(r.clone()),
                )
            }
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
            let loc = trigger(t, planned.line, esc).map_err(at)?;
            if matches!(loc.inst, Instruction::Run) {
                run_line = run_line.or(Some((planned.line, Some(t.clone()))));
                continue;
            }
            dispatch(&ctx, &mut state, &loc, &mut steps, &stage_refs, &context).map_err(at)?;
        }
        for loc in &prepared.insts[planned.start + 1..planned.end] {
            if matches!(loc.inst, Instruction::Run) {
                run_line = run_line.or(Some((loc.line, None)));
                continue;
            }
            dispatch(&ctx, &mut state, loc, &mut steps, &stage_refs, &context).map_err(at)?;
        }
        state.settle_tentative(&mut steps, bases);
        if let Some(a) = &name {
            names.push((a.clone(), si));
        }
        stages.push(Stage {
            name,
            base,
            steps,
            platform: planned.platform.clone(),
            from_line: Some(planned.line),
        });
        finals.push(state);
        runs.push(run_line);
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

#[cfg(test)]
#[path = "frontend_tests.rs"]
mod tests;
