//! `--chown` owner resolution against a root filesystem's `etc/passwd` and `etc/group`,
//! with BuildKit's rules: a user name gives its uid and primary gid; a numeric user gives
//! that uid and the same number as gid; a group (name or number) overrides the gid.

use std::path::Path;

use super::ContextError;

/// Resolves `user[:group]` (already split) to numeric ids using `<root>/etc/passwd` and
/// `<root>/etc/group`. Files are only read when a name has to be looked up.
pub fn lookup_owner(
    root: &Path,
    user: &str,
    group: Option<&str>,
) -> Result<(u64, u64), ContextError> {
    let (uid, mut gid) = match user.parse::<u64>() {
        Ok(n) => (n, n),
        Err(_) => {
            let passwd = read_db(root, "etc/passwd", user)?;
            // name:password:uid:gid:gecos:home:shell
            find(&passwd, user)
                .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
                .ok_or_else(|| ContextError::Owner {
                    name: user.to_string(),
                    reason: "no such user in the image's /etc/passwd".into(),
                })?
        }
    };
    if let Some(g) = group {
        gid = match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                let groups = read_db(root, "etc/group", g)?;
                // name:password:gid:members
                find(&groups, g)
                    .and_then(|f| f.get(2)?.parse().ok())
                    .ok_or_else(|| ContextError::Owner {
                        name: g.to_string(),
                        reason: "no such group in the image's /etc/group".into(),
                    })?
            }
        };
    }
    Ok((uid, gid))
}

/// Splits a `--chown` value into user and optional group (`user`, `user:group`, `:group`
/// is refused as Docker does).
pub fn split_owner(spec: &str) -> Option<(&str, Option<&str>)> {
    match spec.split_once(':') {
        Some((u, g)) if !u.is_empty() && !g.is_empty() && !g.contains(':') => Some((u, Some(g))),
        Some(_) => None,
        None if !spec.is_empty() => Some((spec, None)),
        None => None,
    }
}

fn read_db(root: &Path, rel: &str, name: &str) -> Result<String, ContextError> {
    // Refuse to follow a symlinked /etc out of the root: resolve within it.
    let path =
        super::source::resolve_in_root(root, rel, true).map_err(|_| ContextError::Owner {
            name: name.to_string(),
            reason: format!("/{rel} cannot be read in the image"),
        })?;
    match std::fs::read(&path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ContextError::Owner {
            name: name.to_string(),
            reason: format!("the image has no /{rel} to look the name up in; use numeric ids"),
        }),
        Err(source) => Err(ContextError::Read { path, source }),
    }
}

fn find<'a>(db: &'a str, name: &str) -> Option<Vec<&'a str>> {
    db.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        let r = d.path();
        assert_eq!(lookup_owner(r, "app", None).unwrap(), (1000, 1001));
        assert_eq!(lookup_owner(r, "app", Some("staff")).unwrap(), (1000, 50));
        assert_eq!(lookup_owner(r, "42", None).unwrap(), (42, 42));
        assert_eq!(lookup_owner(r, "42", Some("7")).unwrap(), (42, 7));
        assert_eq!(lookup_owner(r, "42", Some("staff")).unwrap(), (42, 50));
        assert!(lookup_owner(r, "nobody", None).is_err());
        assert!(lookup_owner(r, "app", Some("wheel")).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(lookup_owner(empty.path(), "app", None).is_err());
        assert_eq!(lookup_owner(empty.path(), "5", Some("6")).unwrap(), (5, 6));
        assert_eq!(split_owner("a:b"), Some(("a", Some("b"))));
        assert_eq!(split_owner("a"), Some(("a", None)));
        assert_eq!(split_owner(":b"), None);
        assert_eq!(split_owner("a:"), None);
    }
}
