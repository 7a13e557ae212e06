//! Glob patterns with Go's `path/filepath.Match` semantics, which is what Docker and
//! BuildKit use for COPY/ADD sources: `*` (any run of non-`/` characters), `?` (one
//! non-`/` character), `[...]` classes with ranges and `^` negation, and `\` escapes.
//! A malformed pattern (unclosed class, trailing `\`, …) is an error, as in Go.

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Literal(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
}

/// Why a pattern is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPattern(pub String);

impl std::fmt::Display for BadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "syntax error in pattern: {}", self.0)
    }
}

impl std::error::Error for BadPattern {}

/// Whether `s` contains a character that makes it a pattern rather than a plain path
/// (what Docker checks before expanding a source).
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern, BadPattern> {
        let bad = |why: &str| BadPattern(format!("{pattern:?}: {why}"));
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                '\\' => {
                    let c = *chars.get(i + 1).ok_or_else(|| bad("trailing '\\'"))?;
                    tokens.push(Token::Literal(c));
                    i += 2;
                }
                '[' => {
                    let (token, next) = class(&chars, i + 1).ok_or_else(|| bad("bad '[' class"))?;
                    tokens.push(token);
                    i = next;
                }
                c => {
                    tokens.push(Token::Literal(c));
                    i += 1;
                }
            }
        }
        Ok(Pattern { tokens })
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        match_from(&self.tokens, &name)
    }
}

/// Parses a class body starting after `[`; returns the token and the index after `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !ranges.is_empty() {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            if h < lo {
                return None;
            }
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character inside a class; `-` and `]` must be escaped there.
fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match *chars.get(i)? {
        '-' | ']' => None,
        '\\' => chars.get(i + 1).map(|c| (*c, i + 2)),
        c => Some((c, i + 1)),
    }
}

fn match_from(tokens: &[Token], name: &[char]) -> bool {
    // Iterative matcher with single-star backtracking (stars never cross '/', so the
    // last star is the only one that needs to be retried).
    let (mut t, mut n) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    loop {
        if t < tokens.len() {
            match &tokens[t] {
                Token::Star => {
                    retry = Some((t, n));
                    t += 1;
                    continue;
                }
                tok if n < name.len() && one(tok, name[n]) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        } else if n == name.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character (never a '/').
        match retry {
            Some((st, sn)) if sn < name.len() && name[sn] != '/' => {
                retry = Some((st, sn + 1));
                t = st + 1;
                n = sn + 1;
            }
            _ => return false,
        }
    }
}

fn one(token: &Token, c: char) -> bool {
    match token {
        Token::Any => c != '/',
        Token::Literal(l) => *l == c,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
        Token::Star => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::new(p).unwrap().matches(n)
    }

    #[test]
    fn go_match_table() {
        // Cases from the semantics of Go's filepath.Match.
        let yes = [
            ("abc", "abc"),
            ("*", "abc"),
            ("*c", "abc"),
            ("a*", "a"),
            ("a*", "abc"),
            ("a*/b", "abc/b"),
            ("a*b*c*d*e*/f", "axbxcxdxe/f"),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f"),
            ("a*b?c*x", "abxbbxdbxebxczzx"),
            ("ab[c]", "abc"),
            ("ab[b-d]", "abc"),
            ("ab[^c]", "abd"),
            ("ab[^b-d]", "abe"),
            ("a\\*b", "a*b"),
            ("a?b", "a☺b"),
            ("a[^a]b", "a☺b"),
            ("[\\-]", "-"),
            ("[x\\-]", "-"),
            ("[\\]a]", "]"),
            ("*x", "xxx"),
            ("*.txt", ".hidden.txt"),
        ];
        for (p, n) in yes {
            assert!(m(p, n), "{p} should match {n}");
        }
        let no = [
            ("*c", "abd"),
            ("a*/b", "a/c/b"),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff"),
            ("a*b?c*x", "abxbbxdbxebxczzy"),
            ("ab[^c]", "abc"),
            ("ab[^b-d]", "abc"),
            ("a\\*b", "ab"),
            ("a???b", "a☺b"),
            ("a?b", "a/b"),
            ("a*b", "a/b"),
            ("*", "a/b"),
        ];
        for (p, n) in no {
            assert!(!m(p, n), "{p} should not match {n}");
        }
        for bad in [
            "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[a-b-c]", "\\", "a\\", "[z-a]",
        ] {
            assert!(
                Pattern::new(bad).is_err(),
                "{bad:?} should be a bad pattern"
            );
        }
        assert!(has_meta("a*") && has_meta("x[1]") && !has_meta("plain/path"));
    }
}
