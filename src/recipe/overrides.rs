//! Config overrides given as flags (`--entrypoint`, `--cmd`, `--env`, …), parsed into
//! ordered config edits. Shared by both front ends: in Dockerfile mode they apply after the
//! last instruction.

use std::collections::BTreeMap;

use crate::image::config::ConfigEdit;

use super::RecipeError;

/// The raw flag values, as the user typed them.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub entrypoint: Option<String>,
    pub cmd: Option<String>,
    pub env: Vec<String>,
    pub labels: Vec<String>,
    pub annotations: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub expose: Vec<String>,
}

impl Overrides {
    /// The config edits, in a fixed order (CMD before ENTRYPOINT so that giving both keeps
    /// both, and giving only `--entrypoint` clears an inherited CMD, as `docker run
    /// --entrypoint` does).
    pub fn edits(&self) -> Result<Vec<ConfigEdit>, RecipeError> {
        let mut out = Vec::new();
        for e in &self.env {
            let (k, v) = key_value("--env", e)?;
            out.push(ConfigEdit::Env(k, v));
        }
        for l in &self.labels {
            let (k, v) = key_value("--label", l)?;
            out.push(ConfigEdit::Label(k, v));
        }
        for p in &self.expose {
            for port in parse_expose(p)? {
                out.push(ConfigEdit::Expose(port));
            }
        }
        if let Some(w) = &self.workdir {
            if !w.starts_with('/') {
                return Err(flag(
                    "--workdir",
                    w,
                    "must be an absolute path, e.g. /srv/app",
                ));
            }
            out.push(ConfigEdit::WorkingDir(w.clone()));
        }
        if let Some(u) = &self.user {
            if u.is_empty() || u.contains(char::is_whitespace) {
                return Err(flag("--user", u, "expected USER[:GROUP] or UID[:GID]"));
            }
            out.push(ConfigEdit::User(u.clone()));
        }
        if let Some(c) = &self.cmd {
            out.push(ConfigEdit::Cmd(parse_command("--cmd", c)?));
        }
        if let Some(e) = &self.entrypoint {
            out.push(ConfigEdit::Entrypoint(parse_command("--entrypoint", e)?));
        }
        Ok(out)
    }

    /// Manifest annotations from `--annotation K=V`.
    pub fn annotations(&self) -> Result<BTreeMap<String, String>, RecipeError> {
        self.annotations
            .iter()
            .map(|a| key_value("--annotation", a))
            .collect()
    }
}

/// A JSON array of strings (exec form), or a plain string run by `/bin/sh -c` (shell
/// form, as Docker does). `[]` or an empty string clears the value.
pub fn parse_command(flag_name: &str, value: &str) -> Result<Option<Vec<String>>, RecipeError> {
    let trimmed = value.trim();
    if trimmed.starts_with('[') {
        let parsed: Vec<String> = serde_json::from_str(trimmed).map_err(|e| {
            flag(
                flag_name,
                value,
                &format!("looks like a JSON array but is not one ({e}); write e.g. '[\"/app/server\", \"--port\", \"80\"]'"),
            )
        })?;
        return Ok(if parsed.is_empty() {
            None
        } else {
            Some(parsed)
        });
    }
    if trimmed.is_empty() {
        return Ok(None);
    }
    Ok(Some(vec!["/bin/sh".into(), "-c".into(), value.to_string()]))
}

/// `K=V` (V may be empty or contain `=`).
pub fn key_value(flag_name: &str, s: &str) -> Result<(String, String), RecipeError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(flag(flag_name, s, "expected KEY=VALUE")),
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`, …; ranges expand as Docker does.
pub fn parse_expose(spec: &str) -> Result<Vec<String>, RecipeError> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(flag("--expose", spec, "protocol must be tcp, udp or sctp"));
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a), port(b)),
        None => (port(ports), port(ports)),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi && hi - lo < 10_000 => {
            Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
        }
        _ => Err(flag(
            "--expose",
            spec,
            "expected PORT[/PROTO] or FROM-TO[/PROTO] with ports 1-65535",
        )),
    }
}

fn flag(name: &str, value: &str, reason: &str) -> RecipeError {
    RecipeError::Flag {
        flag: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse_command("--cmd", r#"["/a","b"]"#).unwrap(),
            Some(vec!["/a".to_string(), "b".to_string()])
        );
        assert_eq!(
            parse_command("--cmd", "node server.js").unwrap(),
            Some(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "node server.js".to_string()
            ])
        );
        assert_eq!(parse_command("--cmd", "[]").unwrap(), None);
        assert!(parse_command("--cmd", "[\"unterminated").is_err());
    }

    #[test]
    fn expose_and_kv() {
        assert_eq!(parse_expose("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_expose("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_expose("8000-8002").unwrap().len(), 3);
        for bad in ["0", "x", "80/icmp", "9-1", "70000"] {
            assert!(parse_expose(bad).is_err(), "{bad}");
        }
        assert_eq!(
            key_value("--env", "A=b=c").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert!(key_value("--env", "=x").is_err());
        assert!(key_value("--env", "novalue").is_err());
    }
}
