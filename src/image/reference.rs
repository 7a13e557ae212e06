//! Image references (`[host[:port]/]repo[:tag][@digest]`) with Docker's normalization.
//!
//! `alpine` → `docker.io/library/alpine:latest`; a first component is a registry host only
//! when it has a `.` or `:` or is `localhost` (Docker's `splitReposSearchTerms` rule).

use std::fmt;

use super::{Digest, ImageError};

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::Reference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.len() > 4096 {
            return Err(bad("too long"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace"));
        }
        if let Some((scheme, rest)) = input.split_once("://") {
            return Err(bad(&format!(
                "image references have no scheme: write {rest} (plain HTTP is used for \
                 loopback registries, or elsewhere with --insecure-registry; not {scheme}://)"
            )));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    Digest::parse(d)
                        .map_err(|_| bad("the part after '@' must be sha256:<64 hex digits>"))?,
                ),
            ),
            None => (input, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|r| bad(&r))?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        validate_host(&registry).map_err(|r| bad(&r))?;
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| bad(&r))?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host as written (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository, pointing at `digest` (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository with another tag (digest dropped).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The tag, or the digest when there is no tag: what a manifest is fetched or pushed by.
    pub fn tag_or_digest(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => d.to_string(),
            (Some(t), None) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry host is a loopback name or address (plain HTTP allowed).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(host_port)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !ok {
        return Err(format!("invalid registry host {host:?}"));
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("invalid port in registry host {host:?}"));
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("missing repository name".to_string());
    }
    for component in repo.split('/') {
        let valid = !component.is_empty()
            && component
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            && component
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && component
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "invalid repository component {component:?}: use lowercase letters, digits and \
                 single separators (. _ -), e.g. myregistry.com:5000/team/server"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(r("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(r("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(
            r("docker.io/library/alpine:3.20"),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(r("index.docker.io/foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(r("user/app"), "docker.io/user/app:latest");
        assert_eq!(r("localhost/app"), "localhost/app:latest");
        assert_eq!(r("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(
            r("myregistry.com:5000/server"),
            "myregistry.com:5000/server:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(r(&format!("h:5000/repo@{d}")), format!("h:5000/repo@{d}"));
        assert_eq!(
            r(&format!("h:5000/repo:t@{d}")),
            format!("h:5000/repo:t@{d}")
        );
        assert_eq!(r("[::1]:5000/x"), "[::1]:5000/x:latest");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "UPPER/case",
            "a b",
            "repo:",
            "repo:-x",
            "host:99999/x",
            "x@sha256:abc",
            "a//b",
            "h:5000/",
            ":tag",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = Reference::parse("http://127.0.0.1:5000/app:v1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no scheme: write 127.0.0.1:5000/app:v1"), "{e}");
    }

    #[test]
    fn loopback() {
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("127.3.4.5"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("myregistry.com:5000"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }
}
