//! `WWW-Authenticate` challenges of a registry's `/v2/` endpoint (RFC 7235 §4.1, Docker's
//! token authentication spec): which scheme, and for Bearer the realm and service.
//!
//! They decide whether credentials may be sent at all (never to a plain-HTTP realm on
//! another host), where tokens come from, and let a cross-repository mount ask for a token
//! with two scopes.

/// What a registry asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No challenge: anonymous access works.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses every `WWW-Authenticate` value; Bearer wins over Basic when both are offered.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Challenge {
        let mut basic = false;
        for value in values {
            for (scheme, params) in split_challenges(value) {
                if scheme.eq_ignore_ascii_case("bearer") {
                    let get = |name: &str| {
                        params
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.clone())
                    };
                    if let Some(realm) = get("realm").filter(|r| !r.is_empty()) {
                        return Challenge::Bearer {
                            realm,
                            service: get("service"),
                        };
                    }
                } else if scheme.eq_ignore_ascii_case("basic") {
                    basic = true;
                }
            }
        }
        if basic {
            Challenge::Basic
        } else {
            Challenge::None
        }
    }
}

/// The `error` parameter of a Bearer challenge (RFC 6750 §3.1): `invalid_token` says the
/// token sent was expired, revoked or malformed, and that a new one may be asked for.
pub fn bearer_error<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values
        .into_iter()
        .flat_map(split_challenges)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .flat_map(|(_, params)| params)
        .find(|(k, _)| k.eq_ignore_ascii_case("error"))
        .map(|(_, v)| v)
}

type Params = Vec<(String, String)>;

/// Splits a header value into `(scheme, params)` challenges. A new challenge starts at a
/// token that is not followed by `=`.
fn split_challenges(value: &str) -> Vec<(String, Params)> {
    let mut out: Vec<(String, Params)> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let token_end = rest.find([' ', '\t', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start_matches([' ', '\t']);
        if let Some(v) = after.strip_prefix('=') {
            // A parameter of the current challenge.
            let v = v.trim_start_matches([' ', '\t']);
            let (val, remaining) = parse_value(v);
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_string(), val));
            }
            rest = remaining;
        } else {
            out.push((token.to_string(), Vec::new()));
            rest = after;
        }
    }
    out
}

/// A quoted string (with `\` escapes) or a token; returns it and what follows.
fn parse_value(v: &str) -> (String, &str) {
    if let Some(inner) = v.strip_prefix('"') {
        let mut val = String::new();
        let mut chars = inner.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(n);
                    }
                }
                '"' => return (val, &inner[i + 1..]),
                c => val.push(c),
            }
        }
        (val, "")
    } else {
        let end = v.find([',', ' ', '\t']).unwrap_or(v.len());
        (v[..end].to_string(), &v[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer() {
        let c = Challenge::parse([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#,
        ]);
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            }
        );
        let c = Challenge::parse([r#"bearer service="a, b", realm="http://127.0.0.1:1/t\"x""#]);
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://127.0.0.1:1/t\"x".into(),
                service: Some("a, b".into())
            }
        );
    }

    #[test]
    fn basic_and_none() {
        assert_eq!(
            Challenge::parse([r#"Basic realm="Registry Realm""#]),
            Challenge::Basic
        );
        assert_eq!(Challenge::parse(Vec::<&str>::new()), Challenge::None);
        assert_eq!(
            Challenge::parse([r#"Basic realm="x", Bearer realm="https://t/token",service=s"#]),
            Challenge::Bearer {
                realm: "https://t/token".into(),
                service: Some("s".into())
            }
        );
        // A Bearer without realm is unusable.
        assert_eq!(Challenge::parse(["Bearer service=x"]), Challenge::None);
    }

    #[test]
    fn bearer_errors() {
        let refused = r#"Bearer realm="https://t/token",service="s",scope="repository:a:push",error="invalid_token""#;
        assert_eq!(bearer_error([refused]).as_deref(), Some("invalid_token"));
        assert_eq!(
            bearer_error([r#"Basic realm="r", Bearer realm="t",error=insufficient_scope"#])
                .as_deref(),
            Some("insufficient_scope")
        );
        assert_eq!(bearer_error([r#"Bearer realm="t""#]), None);
        // Only a Bearer challenge's parameter counts.
        assert_eq!(
            bearer_error([r#"Basic realm="r",error="invalid_token""#]),
            None
        );
    }
}
