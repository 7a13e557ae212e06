//! WORKDIR: the path made absolute against the current one, the config edit, and a layer
//! creating the directory (and missing parents) owned by USER, as BuildKit and buildah
//! do — deferred to the pipeline when USER is a name to look up in the image.

use super::DfError;
use super::instructions::Located;
use super::stage::{Ctx, StageState, push_edits};
use crate::image::config::ConfigEdit;
use crate::recipe::{CopySource, CopySpec, Owner, Step};

/// WORKDIR: the config edit, and a layer creating the directory (owned by USER, as
/// BuildKit and buildah do) unless it already exists.
pub fn dispatch(
    ctx: &Ctx<'_>,
    st: &mut StageState,
    loc: &Located,
    raw: &str,
    steps: &mut Vec<Step>,
) -> Result<(), DfError> {
    let err = |message: String| DfError {
        line: loc.line,
        message,
    };
    let w = st.word(raw, ctx.esc).map_err(&err)?;
    if w.is_empty() {
        return Err(err("WORKDIR requires a path".into()));
    }
    let dir = st
        .absolute(w.trim_end_matches('/'))
        .trim_end_matches('/')
        .to_string();
    let dir = if dir.is_empty() { "/".to_string() } else { dir };
    st.workdir = dir.clone();
    let edit = ConfigEdit::WorkingDir(dir.clone());
    let text = loc.text.clone();
    if dir != "/" {
        let owner = user_owner(&st.user);
        let spec = CopySpec {
            source: CopySource::Context,
            sources: Vec::new(),
            dest: format!("{dir}/"),
            owner: owner.clone(),
            chmod: None,
            exclude: Vec::new(),
            parents: false,
            add: false,
            created_by: text.clone(),
        };
        match owner {
            Some(Owner::Names { .. }) => {
                // The pipeline creates it; later steps must know it exists.
                let mut acc = String::new();
                let mut made = Vec::new();
                for part in dir.split('/').filter(|p| !p.is_empty()) {
                    if !acc.is_empty() {
                        acc.push('/');
                    }
                    acc.push_str(part);
                    made.push(acc.clone());
                }
                st.known.record_dirs(made);
                steps.push(Step::Copy(spec));
            }
            _ => {
                let ids = match owner {
                    Some(Owner::Ids { uid, gid }) => Some((uid, gid)),
                    _ => None,
                };
                let fs = st.dest_fs(ctx.bases);
                let env = crate::context::CopyEnv {
                    root: std::path::Path::new("/nonexistent"),
                    rootfs: true,
                    ignore: None,
                    dest: &fs,
                };
                let resolved = crate::context::resolve_tentative(&env, &spec, ids, &[])
                    .map_err(|e| err(e.to_string()))?;
                if !resolved.layer.entries.is_empty() {
                    st.record(&resolved.layer);
                    st.tentative
                        .extend(resolved.tentative.into_iter().map(|p| (p, true)));
                    steps.push(Step::Layer(resolved.layer));
                }
            }
        }
    }
    push_edits(steps, vec![edit], &text);
    Ok(())
}

/// The owner for directories a WORKDIR creates: USER's, numeric when it can be.
pub fn user_owner(user: &str) -> Option<Owner> {
    if user.is_empty() {
        return None;
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let id = |n: &str| if n == "root" { Ok(0) } else { n.parse::<u64>() };
    match (id(u), g.map(id)) {
        (Ok(uid), None) => Some(Owner::Ids { uid, gid: uid }),
        (Ok(uid), Some(Ok(gid))) => Some(Owner::Ids { uid, gid }),
        _ => Some(Owner::Names {
            user: u.to_string(),
            group: g.map(str::to_string),
        }),
    }
}
