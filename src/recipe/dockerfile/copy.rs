//! COPY and ADD: flags and arguments expanded with the stage's variables, the
//! destination made absolute against WORKDIR, then either resolved now into a layer
//! (context sources, numeric or no `--chown`, heredocs) or left as a deferred
//! [`Step::Copy`] for the pipeline (`--from=<stage|image>`, owner names).

use std::path::Path;

use super::instructions::{CopyArgs, Located};
use super::stage::{Ctx, StageState};
use super::{DfError, expand};
use crate::context::copy::is_remote;
use crate::context::owner::split_owner;
use crate::context::{CopyEnv, Ignore, resolve_tentative, resolve_with_inline};
use crate::image::Reference;
use crate::recipe::{CopySource, CopySpec, Owner, Step};

/// Earlier stages by name (lower-cased) and index, for `--from`.
pub struct Stages<'a> {
    pub names: &'a [(String, usize)],
    /// Index of the stage being dispatched.
    pub current: usize,
    /// Names of later stages (for a clear error).
    pub later: &'a [String],
}

pub struct Context<'a> {
    pub root: &'a Path,
    pub ignore: &'a Ignore,
}

pub fn dispatch(
    ctx: &Ctx<'_>,
    st: &mut StageState,
    loc: &Located,
    args: &CopyArgs,
    add: bool,
    stages: &Stages<'_>,
    context: &Context<'_>,
) -> Result<Step, DfError> {
    let err = |message: String| DfError {
        line: loc.line,
        message,
    };
    let kw = if add { "ADD" } else { "COPY" };
    let word = |s: &str| st.word(s, ctx.esc).map_err(&err);
    let mut words = Vec::new();
    for a in &args.args {
        // Heredoc markers are named sources, not paths.
        if a.starts_with("<<") && !args.heredocs.is_empty() {
            words.push(a.clone());
        } else {
            words.push(word(a)?);
        }
    }
    let Some(dest_raw) = words.pop() else {
        return Err(err(format!(
            "{kw} requires at least one source and a destination"
        )));
    };
    if dest_raw.is_empty() {
        return Err(err(format!("{kw}: the destination is empty")));
    }
    let dest = st.absolute(&dest_raw);
    let mut sources = Vec::new();
    let mut inline: Vec<(String, Vec<u8>)> = Vec::new();
    let mut docs = args.heredocs.iter();
    for w in words {
        if w.starts_with("<<") && !args.heredocs.is_empty() {
            let doc = docs
                .next()
                .ok_or_else(|| err(format!("{kw}: heredoc {w} has no body")))?;
            let body = if doc.expand {
                expand::heredoc(&doc.content, &|n| st.lookup(n)).map_err(&err)?
            } else {
                doc.content.clone()
            };
            inline.push((doc.name.clone(), body.into_bytes()));
        } else {
            if add && (w.to_ascii_lowercase().starts_with("git@") || is_git_url(&w)) {
                return Err(err(format!(
                    "ADD {w}: git sources are not supported; check the repository out in your build step and COPY it"
                )));
            }
            sources.push(w);
        }
    }
    let remote = add && sources.iter().any(|s| is_remote(s));
    let checksum = match &args.checksum {
        None => None,
        Some(_) if !remote => {
            return Err(err(
                "ADD --checksum only applies to a source that is an http(s) URL".into(),
            ));
        }
        Some(c) => {
            let v = word(c)?;
            Some(
                crate::image::Digest::parse(&v)
                    .map_err(|e| err(format!("ADD --checksum={v}: {e}")))?,
            )
        }
    };
    if remote {
        return remote_add(ctx, st, loc, args, &sources, &inline, checksum, dest);
    }
    let (owner, chmod) = owner_and_mode(args, &word).map_err(&err)?;
    let source = match &args.from {
        None => CopySource::Context,
        Some(f) => from_source(&word(f)?, stages).map_err(&err)?,
    };
    let exclude = args
        .exclude
        .iter()
        .map(|e| word(e))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = CopySpec {
        source,
        sources,
        dest,
        owner,
        chmod,
        exclude,
        parents: args.parents,
        add,
        created_by: loc.text.clone(),
    };
    let deferred =
        spec.source != CopySource::Context || matches!(spec.owner, Some(Owner::Names { .. }));
    if deferred {
        if !inline.is_empty() {
            return Err(err(format!(
                "{kw} with a heredoc cannot use --from or an owner name; use numeric --chown ids"
            )));
        }
        if spec.source == CopySource::Context {
            // Resolved now with a placeholder owner only to learn (and check) what it
            // creates; the pipeline resolves it again with the looked-up owner.
            let fs = st.dest_fs(ctx.bases);
            let env = CopyEnv {
                root: context.root,
                rootfs: false,
                ignore: Some(context.ignore),
                dest: &fs,
            };
            let layer = resolve_with_inline(&env, &spec, None, &[])
                .map_err(|e| err(format!("{kw}: {e}")))?;
            st.record(&layer);
        }
        return Ok(Step::Copy(spec));
    }
    let ids = match spec.owner {
        Some(Owner::Ids { uid, gid }) => Some((uid, gid)),
        _ => None,
    };
    let fs = st.dest_fs(ctx.bases);
    let env = CopyEnv {
        root: context.root,
        rootfs: false,
        ignore: Some(context.ignore),
        dest: &fs,
    };
    let resolved =
        resolve_tentative(&env, &spec, ids, &inline).map_err(|e| err(format!("{kw}: {e}")))?;
    st.record(&resolved.layer);
    st.tentative
        .extend(resolved.tentative.into_iter().map(|p| (p, false)));
    Ok(Step::Layer(resolved.layer))
}

/// `ADD <url>… <dest>`: a deferred step; the pipeline downloads (the registry module is
/// the one that talks HTTP) and places the files.
#[allow(clippy::too_many_arguments)]
fn remote_add(
    ctx: &Ctx<'_>,
    st: &mut StageState,
    loc: &Located,
    args: &CopyArgs,
    sources: &[String],
    inline: &[(String, Vec<u8>)],
    checksum: Option<crate::image::Digest>,
    dest: String,
) -> Result<Step, DfError> {
    let err = |message: String| DfError {
        line: loc.line,
        message,
    };
    if !inline.is_empty() || sources.iter().any(|s| !is_remote(s)) {
        return Err(err(
            "ADD mixes URLs with local sources; put the URLs in an ADD of their own".into(),
        ));
    }
    if args.from.is_some() {
        return Err(err("ADD --from cannot be used with a URL source".into()));
    }
    if checksum.is_some() && sources.len() > 1 {
        return Err(err(
            "ADD --checksum needs a single URL source; use one ADD per URL".into(),
        ));
    }
    if sources.len() > 1 && !dest.ends_with('/') {
        return Err(err(
            "ADD with several URLs: the destination must be a directory and end with a /".into(),
        ));
    }
    let word = |s: &str| st.word(s, ctx.esc).map_err(&err);
    let (owner, chmod) = owner_and_mode(args, &word).map_err(&err)?;
    Ok(Step::Copy(CopySpec {
        source: CopySource::Url { checksum },
        sources: sources.to_vec(),
        dest,
        owner,
        chmod,
        exclude: Vec::new(),
        parents: false,
        add: true,
        // The history entry is pushed with the image: no credentials from the URLs.
        created_by: crate::progress::redact(&loc.text).into_owned(),
    }))
}

/// `--chown` and `--chmod`, expanded with `word`.
fn owner_and_mode(
    args: &CopyArgs,
    word: &dyn Fn(&str) -> Result<String, DfError>,
) -> Result<(Option<Owner>, Option<u32>), String> {
    let owner = match &args.chown {
        None => None,
        Some(c) => {
            let v = word(c).map_err(|e| e.message)?;
            Some(
                owner(&v)
                    .ok_or_else(|| format!("--chown={v}: expected USER[:GROUP] or UID[:GID]"))?,
            )
        }
    };
    let chmod = match &args.chmod {
        None => None,
        Some(c) => Some(octal_mode(&word(c).map_err(|e| e.message)?)?),
    };
    Ok((owner, chmod))
}

/// A URL BuildKit treats as a git repository.
fn is_git_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    (l.starts_with("http://") || l.starts_with("https://"))
        && (l.split(['?', '#']).next().unwrap_or("").ends_with(".git"))
}

/// `--chmod` bits: octal, at most 7777.
fn octal_mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("--chmod={v}: expected octal permission bits such as 755"))
}

/// `--chown` value: numeric ids when both are numbers (a lone uid is also the gid),
/// names otherwise.
fn owner(spec: &str) -> Option<Owner> {
    let (u, g) = split_owner(spec)?;
    match (u.parse::<u64>(), g.map(str::parse::<u64>)) {
        (Ok(uid), None) => Some(Owner::Ids { uid, gid: uid }),
        (Ok(uid), Some(Ok(gid))) => Some(Owner::Ids { uid, gid }),
        _ => Some(Owner::Names {
            user: u.to_string(),
            group: g.map(str::to_string),
        }),
    }
}

/// `--from=`: an earlier stage by name or index, else an image reference.
fn from_source(from: &str, stages: &Stages<'_>) -> Result<CopySource, String> {
    let lower = from.to_ascii_lowercase();
    if let Some((_, i)) = stages.names.iter().find(|(n, _)| *n == lower) {
        return Ok(CopySource::Stage(*i));
    }
    if let Ok(i) = from.parse::<usize>() {
        return if i < stages.current {
            Ok(CopySource::Stage(i))
        } else {
            Err(format!(
                "--from={from}: stage {i} is not an earlier stage (stages are numbered from 0)"
            ))
        };
    }
    if stages.later.contains(&lower) {
        return Err(format!(
            "--from={from}: stage {from:?} is defined later in the Dockerfile; a stage can only copy from earlier ones"
        ));
    }
    Reference::parse(from).map(CopySource::Image).map_err(|e| {
        format!("--from={from}: not an earlier stage name, and not an image reference: {e}")
    })
}
