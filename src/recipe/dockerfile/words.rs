//! Splitting instruction arguments the way BuildKit's parser does before expansion:
//! raw words that keep their quotes, JSON (exec) forms, and leading `--flag[=value]`s.

/// Splits on whitespace outside quotes, keeping quotes and escapes in the words (they are
/// removed later by expansion). Used for `KEY=VALUE` lists.
pub fn raw_words(s: &str, esc: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == esc
                    && q == '"'
                    && let Some(n) = chars.next()
                {
                    cur.push(n);
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == esc {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The exec (JSON array of strings) form, if `s` is one. `Err` when it looks like one
/// (`[` … `]`, or `["` …) but is not valid: Docker would silently run it as a shell
/// command, which is almost never what was meant.
pub fn json_form(s: &str) -> Result<Option<Vec<String>>, String> {
    let t = s.trim();
    if !t.starts_with('[') {
        return Ok(None);
    }
    // An attempted array: a quote right after the bracket (`["a", "b"` without its `]`,
    // `['a']`), a final `"]`, or `[…]` whole without a space after the bracket (`[1, 2]`).
    // A shell test (`[ -f /x ]`, `[ "$A" = b ] && run`) has that space, and a COPY glob
    // (`[ab].conf /dst/`) does not end in `]`: both are shell forms, as in Docker.
    let after = &t[1..];
    let array = after.starts_with(['"', '\''])
        || t.ends_with("\"]")
        || (t.ends_with(']') && !after.starts_with(char::is_whitespace));
    match serde_json::from_str::<Vec<String>>(t) {
        Ok(v) => Ok(Some(v)),
        Err(e) if array => Err(format!(
            "malformed JSON array {t}: {e}; write the exec form as [\"executable\", \"arg\"] (double quotes, no trailing comma)"
        )),
        Err(_) => Ok(None),
    }
}

/// A leading `--name[=value]` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    /// None for a bare `--name`.
    pub value: Option<String>,
}

/// Takes the leading flags off `rest`; returns them and what follows.
pub fn take_flags(rest: &str) -> (Vec<Flag>, String) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(body) = s.strip_prefix("--") {
        if body.is_empty() || body.starts_with(char::is_whitespace) {
            break;
        }
        let end = word_end(body);
        let word = &body[..end];
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.to_string(), None),
        };
        flags.push(Flag { name, value });
        s = body[end..].trim_start();
    }
    (flags, s.to_string())
}

/// End of a flag word: the first whitespace outside quotes.
fn word_end(s: &str) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c.is_whitespace() => return i,
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_flags_and_json() {
        assert_eq!(
            raw_words(r#"A="a b" B=c\ d 'x y'=1"#, '\\'),
            [r#"A="a b""#, r"B=c\ d", "'x y'=1"]
        );
        let (f, rest) = take_flags("--from=build --link --chown=\"a b\" src /dst");
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].value.as_deref(), Some("build"));
        assert_eq!(f[1].value, None);
        assert_eq!(f[2].value.as_deref(), Some("\"a b\""));
        assert_eq!(rest, "src /dst");
        assert_eq!(take_flags("-- x").1, "-- x");
        assert_eq!(
            json_form(r#"["a", "b c"]"#).unwrap(),
            Some(vec!["a".into(), "b c".into()])
        );
        assert_eq!(json_form("echo [x]").unwrap(), None);
        assert_eq!(json_form("[ -f /x ] && run").unwrap(), None);
        assert!(json_form("['single']").is_err());
        assert!(json_form(r#"["a",]"#).is_err());
        assert!(json_form("[1, 2]").is_err());
        assert!(json_form(r#"["a", "b""#).is_err(), "no closing bracket");
        assert!(
            json_form(r#"[ "a" "b"]"#).is_err(),
            "a broken array with spaces"
        );
        assert!(json_form("[1, 2]").is_err());
        // Shell tests, as Docker runs them, and COPY globs.
        assert_eq!(json_form("[ab].conf /c/").unwrap(), None);
        assert_eq!(json_form("[a-z]*.txt /x/").unwrap(), None);
        assert_eq!(json_form("[ -d /x ] || mkdir /x").unwrap(), None);
        assert_eq!(json_form("[ -f /tmp/ready ]").unwrap(), None);
        assert_eq!(
            json_form(r#"[ "$(redis-cli ping)" = "PONG" ] || exit 1"#).unwrap(),
            None
        );
    }
}
