//! Where an image's source came from: the git remote and commit of the checkout that holds
//! the build context, for the `org.opencontainers.image.source` / `.revision` annotations.
//!
//! Asks the `git` program first (it knows worktrees, `includeIf`, `insteadOf`); when git is
//! missing or refuses the repository (CI containers often trip its "dubious ownership"
//! check), reads the `.git` files directly. Never touches the network. Credentials in the
//! remote URL are removed before the URL leaves this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// image-spec `annotations.md` pre-defined keys this module fills in.
pub const CREATED: &str = "org.opencontainers.image.created";
pub const SOURCE: &str = "org.opencontainers.image.source";
pub const REVISION: &str = "org.opencontainers.image.revision";

/// The git facts about a build context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitSource {
    /// The `origin` remote (or the only remote), credentials stripped. None when there is
    /// no remote or it is a local path.
    pub url: Option<String>,
    /// The full hex id of the `HEAD` commit (uncommitted changes do not change it). None
    /// for a repository without commits.
    pub revision: Option<String>,
}

/// The git source of `context`, or None when it is not inside a git checkout.
pub fn detect(context: &Path) -> Option<GitSource> {
    let dir = std::fs::canonicalize(context).ok()?;
    // git finds a repository the same way (a `.git` in the directory or a parent; GIT_DIR
    // is not passed on): without one there is nothing to ask, and no process to start.
    find_git_dir(&dir)?;
    let found = from_git_program(&dir).or_else(|| from_files(&dir))?;
    (found.url.is_some() || found.revision.is_some()).then_some(found)
}

/// The automatic annotations: `created` (an RFC 3339 time, the same as the config's), and
/// `source`/`revision` from `git` when known. The caller lets user annotations win.
pub fn annotations(created: &str, git: Option<&GitSource>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(CREATED.to_string(), created.to_string());
    if let Some(g) = git {
        if let Some(u) = &g.url {
            out.insert(SOURCE.to_string(), u.clone());
        }
        if let Some(r) = &g.revision {
            out.insert(REVISION.to_string(), r.clone());
        }
    }
    out
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        // None of these commands reads the index, but never let a repository's config
        // start a file-system monitor program.
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        // Key the lookup on the context, not on a repository the caller's environment names
        // (ocibuild run from a git hook inherits GIT_DIR).
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn from_git_program(dir: &Path) -> Option<GitSource> {
    // Fails outside a work tree, without git, or when git distrusts the repository owner.
    let inside = git(dir, &["rev-parse", "--is-inside-work-tree"])?;
    if inside != "true" {
        return None;
    }
    let revision = git(dir, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .filter(|r| is_object_id(r));
    let remote = match git(dir, &["remote"]) {
        Some(list) => pick_remote(list.lines().map(str::trim)),
        None => None,
    };
    let url = remote
        .and_then(|r| git(dir, &["remote", "get-url", &r]))
        .and_then(|u| public_url(&u));
    Some(GitSource { url, revision })
}

/// `origin` if it exists, else the only remote.
fn pick_remote<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    let names: Vec<&str> = names.filter(|n| !n.is_empty()).collect();
    if names.contains(&"origin") {
        return Some("origin".into());
    }
    match names.as_slice() {
        [only] => Some((*only).to_string()),
        _ => None,
    }
}

fn from_files(dir: &Path) -> Option<GitSource> {
    let git_dir = find_git_dir(dir)?;
    // A linked worktree keeps HEAD in its own dir and refs/config in the common one.
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => absolute(&git_dir, c.trim()),
        Err(_) => git_dir.clone(),
    };
    let revision = resolve_head(&git_dir, &common);
    let url = std::fs::read_to_string(common.join("config"))
        .ok()
        .and_then(|cfg| remote_url_from_config(&cfg))
        .and_then(|u| public_url(&u));
    Some(GitSource { url, revision })
}

/// The nearest `.git` (directory, or file with `gitdir: <path>`) from `dir` upwards.
fn find_git_dir(dir: &Path) -> Option<PathBuf> {
    for d in dir.ancestors() {
        let dot = d.join(".git");
        if dot.is_dir() {
            return Some(dot);
        }
        if dot.is_file() {
            let text = std::fs::read_to_string(&dot).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            return Some(absolute(d, target));
        }
    }
    None
}

fn absolute(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn resolve_head(git_dir: &Path, common: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref:").map(str::trim) else {
        return is_object_id(head).then(|| head.to_string());
    };
    // Symbolic refs nest rarely; a few hops are plenty and guard against loops.
    let mut name = name.to_string();
    for _ in 0..5 {
        let loose = [git_dir, common]
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join(&name)).ok());
        match loose.as_deref().map(str::trim) {
            Some(v) => match v.strip_prefix("ref:") {
                Some(next) => name = next.trim().to_string(),
                None => return is_object_id(v).then(|| v.to_string()),
            },
            None => return packed_ref(common, &name),
        }
    }
    None
}

fn packed_ref(common: &Path, name: &str) -> Option<String> {
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .find_map(|l| {
            let (id, r) = l.split_once(' ')?;
            (r.trim() == name && is_object_id(id)).then(|| id.to_string())
        })
}

/// SHA-1 (40) or SHA-256 (64) hex object id.
fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The url of `origin` (or of the only remote) in a git config file. A small reader for
/// the part of the format that matters: `[remote "name"]` sections and `url = …` keys.
fn remote_url_from_config(config: &str) -> Option<String> {
    let mut remotes: Vec<(String, String)> = Vec::new();
    let mut section: Option<String> = None;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line
                .strip_prefix("[remote")
                .and_then(|r| r.trim().strip_suffix(']'))
                .map(|r| r.trim().trim_matches('"').to_string());
            continue;
        }
        let Some(remote) = &section else { continue };
        if let Some((k, v)) = line.split_once('=')
            && k.trim().eq_ignore_ascii_case("url")
            && !remotes.iter().any(|(n, _)| n == remote)
        {
            let v = v.trim().trim_matches('"').to_string();
            remotes.push((remote.clone(), v));
        }
    }
    let name = pick_remote(remotes.iter().map(|(n, _)| n.as_str()))?;
    remotes
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, u)| u)
}

/// A remote URL fit to publish: no credentials, and None for local paths (which mean
/// nothing outside this machine).
///
/// * `scheme://user:password@host/path`: for http(s) and anything else that is not ssh,
///   the whole user part goes (CI systems put tokens in the user name, e.g.
///   `https://gitlab-ci-token:…@gitlab.example.com/g/p.git`, `https://<token>@github.com/…`);
///   for `ssh://` only a password goes (`git@` is a login name, not a secret).
/// * scp-like `user@host:path` has no password field and is kept as it is.
pub fn public_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if let Some((scheme, rest)) = raw.split_once("://") {
        let scheme_lc = scheme.to_ascii_lowercase();
        if scheme_lc == "file" || rest.is_empty() {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let host = match authority.rsplit_once('@') {
            None => authority.to_string(),
            Some((userinfo, host)) => {
                let ssh = scheme_lc == "ssh" || scheme_lc == "git+ssh" || scheme_lc == "ssh+git";
                match userinfo.split_once(':') {
                    _ if !ssh => host.to_string(),
                    Some((user, _password)) => format!("{user}@{host}"),
                    None => format!("{userinfo}@{host}"),
                }
            }
        };
        if host.is_empty() {
            return None;
        }
        return Some(format!("{scheme}://{host}{path}"));
    }
    // scp-like syntax: `[user@]host:path`, where host has no slash before the colon.
    match raw.split_once(':') {
        Some((host, path)) if !host.contains('/') && !host.is_empty() && !path.is_empty() => {
            Some(raw.to_string())
        }
        _ => None, // a local path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_credentials() {
        let cases = [
            (
                "https://gitlab-ci-token:glcbt-secret@gitlab.example.com/g/p.git",
                Some("https://gitlab.example.com/g/p.git"),
            ),
            (
                "https://ghp_token@github.com/o/r.git",
                Some("https://github.com/o/r.git"),
            ),
            ("http://u:p@h:8080/a/b", Some("http://h:8080/a/b")),
            ("https://github.com/o/r", Some("https://github.com/o/r")),
            (
                "ssh://git:pw@example.com:2222/o/r.git",
                Some("ssh://git@example.com:2222/o/r.git"),
            ),
            (
                "ssh://git@example.com/o/r.git",
                Some("ssh://git@example.com/o/r.git"),
            ),
            (
                "git@github.com:zyxist/moj-obraz.git",
                Some("git@github.com:zyxist/moj-obraz.git"),
            ),
            ("https://a:b@c:d@host/x", Some("https://host/x")),
            ("/srv/git/repo.git", None),
            ("../repo", None),
            ("file:///srv/git/repo.git", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(public_url(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn reads_remote_from_config() {
        let cfg = "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://u/x\n\
                   [remote \"origin\"]\n\turl = https://tok@example.com/o/r.git\n\
                   \tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n";
        assert_eq!(
            remote_url_from_config(cfg).as_deref(),
            Some("https://tok@example.com/o/r.git")
        );
        let one = "[remote \"mine\"]\n  url = git@h:o/r.git\n";
        assert_eq!(
            remote_url_from_config(one).as_deref(),
            Some("git@h:o/r.git")
        );
        let two = "[remote \"a\"]\nurl = x:y\n[remote \"b\"]\nurl = z:w\n";
        assert_eq!(remote_url_from_config(two), None);
    }

    #[test]
    fn reads_git_files_without_the_git_program() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path();
        let id = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(root.join(".git/refs/heads")).unwrap();
        std::fs::create_dir_all(root.join("app/dist")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(
            root.join(".git/config"),
            "[remote \"origin\"]\n\turl = https://user:pw@example.com/o/r.git\n",
        )
        .unwrap();
        std::fs::write(
            root.join(".git/packed-refs"),
            format!("# pack-refs with: peeled\n{id} refs/heads/main\n"),
        )
        .unwrap();
        let want = GitSource {
            url: Some("https://example.com/o/r.git".into()),
            revision: Some(id.into()),
        };
        assert_eq!(from_files(&root.join("app/dist")), Some(want.clone()));
        // A loose ref wins over packed-refs.
        let newer = "89abcdef0123456789abcdef0123456789abcdef";
        std::fs::write(root.join(".git/refs/heads/main"), format!("{newer}\n")).unwrap();
        assert_eq!(
            from_files(root).and_then(|g| g.revision).as_deref(),
            Some(newer)
        );
        // Detached HEAD.
        std::fs::write(root.join(".git/HEAD"), format!("{id}\n")).unwrap();
        assert_eq!(
            from_files(root).and_then(|g| g.revision).as_deref(),
            Some(id)
        );
    }

    #[test]
    fn not_a_checkout() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // /tmp is not inside a checkout on any sane machine; the files reader agrees.
        assert_eq!(from_files(tmp.path()), None);
    }
}
