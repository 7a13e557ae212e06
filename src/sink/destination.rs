//! Parsing `-t` destinations: registry references and `oci:`, `oci-archive:`,
//! `docker-archive:` file destinations (skopeo's transport syntax).

use std::fmt;
use std::path::PathBuf;

use crate::image::{ImageError, Reference};

#[derive(Clone, Debug, PartialEq)]
pub enum Destination {
    Registry(Reference),
    /// OCI image layout directory, with an optional `org.opencontainers.image.ref.name`.
    OciDir {
        path: PathBuf,
        tag: Option<String>,
    },
    /// A tar of an OCI image layout.
    OciArchive {
        path: PathBuf,
        tag: Option<String>,
    },
    /// A `docker save`-style tar loadable by `docker load`; `reference` becomes its RepoTags.
    DockerArchive {
        path: PathBuf,
        reference: Option<Reference>,
    },
}

impl Destination {
    pub fn parse(input: &str) -> Result<Destination, ImageError> {
        let bad = |reason: &str| ImageError::Reference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("oci:") {
            let (path, tag) = split_path_tag(rest);
            if path.is_empty() {
                return Err(bad("oci: needs a directory, e.g. oci:./out/app:v1"));
            }
            return Ok(Destination::OciDir {
                path: PathBuf::from(path),
                tag,
            });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = split_path_tag(rest);
            if path.is_empty() {
                return Err(bad(
                    "oci-archive: needs a file, e.g. oci-archive:./app.tar:v1",
                ));
            }
            return Ok(Destination::OciArchive {
                path: PathBuf::from(path),
                tag,
            });
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            // The reference part may itself contain ':' (host:port, tag), so split on the
            // first ':' only: docker-archive:<file>[:<ref>], as skopeo does.
            let (path, reference) = match rest.split_once(':') {
                Some((p, r)) if !r.is_empty() => (p, Some(Reference::parse(r)?)),
                _ => (rest.trim_end_matches(':'), None),
            };
            if path.is_empty() {
                return Err(bad(
                    "docker-archive: needs a file, e.g. docker-archive:./app.tar:app:v1",
                ));
            }
            return Ok(Destination::DockerArchive {
                path: PathBuf::from(path),
                reference,
            });
        }
        if let Some(rest) = input.strip_prefix("docker://") {
            return Ok(Destination::Registry(Reference::parse(rest)?));
        }
        Ok(Destination::Registry(Reference::parse(input)?))
    }
}

/// `dir[:tag]`: the tag is after the last ':' when it looks like a tag (no '/').
fn split_path_tag(rest: &str) -> (&str, Option<String>) {
    match rest.rsplit_once(':') {
        Some((p, t)) if !t.is_empty() && !t.contains('/') => (p, Some(t.to_string())),
        _ => (rest, None),
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_tag =
            |f: &mut fmt::Formatter<'_>, scheme: &str, p: &PathBuf, t: &Option<String>| {
                write!(f, "{scheme}:{}", p.display())?;
                match t {
                    Some(t) => write!(f, ":{t}"),
                    None => Ok(()),
                }
            };
        match self {
            Destination::Registry(r) => write!(f, "{r}"),
            Destination::OciDir { path, tag } => with_tag(f, "oci", path, tag),
            Destination::OciArchive { path, tag } => with_tag(f, "oci-archive", path, tag),
            Destination::DockerArchive { path, reference } => {
                write!(f, "docker-archive:{}", path.display())?;
                match reference {
                    Some(r) => write!(f, ":{r}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            Destination::parse("oci:./out/app:v1").unwrap(),
            Destination::OciDir {
                path: "./out/app".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Destination::parse("oci:out").unwrap(),
            Destination::OciDir {
                path: "out".into(),
                tag: None
            }
        );
        match Destination::parse("docker-archive:a.tar:localhost:5000/x:v2").unwrap() {
            Destination::DockerArchive { path, reference } => {
                assert_eq!(path, PathBuf::from("a.tar"));
                assert_eq!(reference.unwrap().to_string(), "localhost:5000/x:v2");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Destination::parse("localhost:5000/server:v1").unwrap(),
            Destination::Registry(_)
        ));
        assert!(Destination::parse("oci:").is_err());
        assert!(Destination::parse("Bad Ref").is_err());
    }
}
