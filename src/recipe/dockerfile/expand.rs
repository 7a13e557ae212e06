//! ARG/ENV variable expansion with the Dockerfile's shell-like rules (BuildKit's
//! `shell.Lex`): `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`/`##`, `${VAR%pat}`/`%%`;
//! single quotes are literal, double quotes allow expansion, the escape character
//! (`\` or the `# escape=` one) makes the next character literal. Quotes are removed.
//! [`words`] also splits on unquoted whitespace, including inside expanded values.

use crate::context::glob::Pattern;

/// Looks a variable up: `None` when it is not set.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands one word (quotes removed, no splitting).
pub fn word(s: &str, esc: char, vars: Lookup<'_>) -> Result<String, String> {
    let mut p = Processor::new(s, esc, vars, false);
    Ok(text(p.run(None)?))
}

/// The characters of a result, without word markers.
fn text(out: Vec<(char, Kind)>) -> String {
    out.into_iter()
        .filter(|(_, k)| *k != Kind::Marker)
        .map(|(c, _)| c)
        .collect()
}

/// Expands and splits into words on unquoted whitespace (values of unquoted variables
/// are split too, as a shell does).
pub fn words(s: &str, esc: char, vars: Lookup<'_>) -> Result<Vec<String>, String> {
    let mut p = Processor::new(s, esc, vars, false);
    let out = p.run(None)?;
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    for (c, kind) in out {
        if kind == Kind::Split && c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
            continue;
        }
        if kind != Kind::Marker {
            cur.push(c);
        }
        in_word = true;
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Expands a heredoc body: variables are expanded, quotes are kept, and `\` only escapes
/// `$`, `` ` `` and itself (a shell heredoc's rules).
pub fn heredoc(s: &str, vars: Lookup<'_>) -> Result<String, String> {
    let mut p = Processor::new(s, '\\', vars, true);
    Ok(text(p.run(None)?))
}

/// How a character of the result came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Literal, quoted or escaped: never splits words.
    Fixed,
    /// Unquoted (literal or from an unquoted expansion): whitespace splits words.
    Split,
    /// Not a character: marks that a (possibly empty) quoted word exists here.
    Marker,
}

struct Processor<'a> {
    chars: Vec<char>,
    pos: usize,
    esc: char,
    vars: Lookup<'a>,
    heredoc: bool,
    /// `${…}` nesting so far: bounded so a hostile Dockerfile cannot exhaust the stack.
    depth: usize,
}

/// Deepest `${a:-${b:-…}}` nesting accepted (real Dockerfiles use two or three).
const MAX_DEPTH: usize = 64;

impl<'a> Processor<'a> {
    fn new(s: &str, esc: char, vars: Lookup<'a>, heredoc: bool) -> Self {
        Processor {
            chars: s.chars().collect(),
            pos: 0,
            esc,
            vars,
            heredoc,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes until `stop` (consumed) or the end.
    fn run(&mut self, stop: Option<char>) -> Result<Vec<(char, Kind)>, String> {
        let mut out = Vec::new();
        while let Some(c) = self.next() {
            if Some(c) == stop {
                return Ok(out);
            }
            if self.heredoc {
                self.heredoc_char(c, &mut out)?;
                continue;
            }
            match c {
                _ if c == self.esc => match self.next() {
                    Some(n) => out.push((n, Kind::Fixed)),
                    None => out.push((c, Kind::Fixed)),
                },
                '\'' => {
                    out.push((' ', Kind::Marker));
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(q) => out.push((q, Kind::Fixed)),
                            None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                        }
                    }
                }
                '"' => {
                    out.push((' ', Kind::Marker));
                    self.double_quoted(&mut out)?;
                }
                '$' => {
                    let v = self.dollar()?;
                    out.extend(v.chars().map(|c| (c, Kind::Split)));
                }
                _ => out.push((c, Kind::Split)),
            }
        }
        match stop {
            Some(s) => Err(format!("missing '{s}'")),
            None => Ok(out),
        }
    }

    fn heredoc_char(&mut self, c: char, out: &mut Vec<(char, Kind)>) -> Result<(), String> {
        match c {
            '\\' => match self.peek() {
                Some(n @ ('$' | '`' | '\\')) => {
                    self.pos += 1;
                    out.push((n, Kind::Fixed));
                }
                _ => out.push((c, Kind::Fixed)),
            },
            '$' => {
                let v = self.dollar()?;
                out.extend(v.chars().map(|c| (c, Kind::Fixed)));
            }
            _ => out.push((c, Kind::Fixed)),
        }
        Ok(())
    }

    fn double_quoted(&mut self, out: &mut Vec<(char, Kind)>) -> Result<(), String> {
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => return Ok(()),
                Some(c) if c == self.esc => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.esc => {
                        self.pos += 1;
                        out.push((n, Kind::Fixed));
                    }
                    _ => out.push((c, Kind::Fixed)),
                },
                Some('$') => {
                    let v = self.dollar()?;
                    out.extend(v.chars().map(|c| (c, Kind::Fixed)));
                }
                Some(c) => out.push((c, Kind::Fixed)),
            }
        }
    }

    /// A variable name; one that starts with a digit is digits only (`$1x` is `$1` then
    /// `x`, as in BuildKit's shell lexer).
    fn name(&mut self) -> String {
        let mut n = String::new();
        let digits = self.peek().is_some_and(|c| c.is_ascii_digit());
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || (!digits && (c.is_ascii_alphabetic() || c == '_')) {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`: the expansion, or a literal `$` when no name follows.
    fn dollar(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let n = self.name();
            if n.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.vars)(&n).unwrap_or_default());
        }
        self.pos += 1;
        if self.depth >= MAX_DEPTH {
            return Err(format!("substitutions nested more than {MAX_DEPTH} deep"));
        }
        self.depth += 1;
        let r = self.braced();
        self.depth -= 1;
        r
    }

    /// The rest of a `${…}` after the brace.
    fn braced(&mut self) -> Result<String, String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: missing variable name after ${".into());
        }
        let value = (self.vars)(&name);
        let op = self.next().ok_or("bad substitution: missing '}'")?;
        let colon = op == ':';
        let op = if colon {
            self.next().ok_or("bad substitution: missing '}'")?
        } else {
            op
        };
        let set = value.is_some();
        let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
        let present = if colon { nonempty } else { set };
        match op {
            '}' if !colon => Ok(value.unwrap_or_default()),
            '-' => {
                let w = text(self.run(Some('}'))?);
                Ok(if present {
                    value.unwrap_or_default()
                } else {
                    w
                })
            }
            '+' => {
                let w = text(self.run(Some('}'))?);
                Ok(if present { w } else { String::new() })
            }
            '?' => {
                let w = text(self.run(Some('}'))?);
                if present {
                    Ok(value.unwrap_or_default())
                } else if w.is_empty() {
                    Err(format!("{name}: is not allowed to be unset"))
                } else {
                    Err(format!("{name}: {w}"))
                }
            }
            '#' | '%' if !colon => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.pos += 1;
                }
                let pat = text(self.run(Some('}'))?);
                trim(&value.unwrap_or_default(), &pat, op == '#', longest)
            }
            other => Err(format!(
                "unsupported modifier ({other}) in substitution ${{{name}...}}"
            )),
        }
    }
}

/// `${v#p}` / `${v##p}` (prefix) and `${v%p}` / `${v%%p}` (suffix) removal. Shell
/// patterns match `/` like any other character, so it is swapped for a private-use
/// character before matching with the glob matcher.
fn trim(v: &str, pat: &str, prefix: bool, longest: bool) -> Result<String, String> {
    const SLASH: char = '\u{e000}';
    let pat = Pattern::new(&pat.replace('/', &SLASH.to_string())).map_err(|e| e.to_string())?;
    let swapped: String = v
        .chars()
        .map(|c| if c == '/' { SLASH } else { c })
        .collect();
    let mut cands: Vec<usize> = swapped
        .char_indices()
        .map(|(i, _)| i)
        .chain([swapped.len()])
        .collect();
    // Ascending cut points give the shortest prefix or the longest suffix first.
    if prefix == longest {
        cands.reverse();
    }
    for i in cands {
        let (m, rest) = if prefix {
            (&swapped[..i], &swapped[i..])
        } else {
            (&swapped[i..], &swapped[..i])
        };
        if pat.matches(m) {
            return Ok(rest.replace(SLASH, "/"));
        }
    }
    Ok(v.to_string())
}

#[cfg(test)]
#[path = "expand_tests.rs"]
mod tests;
