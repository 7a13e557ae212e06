//! `.dockerignore` matching with Docker's rules (moby's `patternmatcher`): patterns are
//! cleaned paths relative to the context root (a leading `/` is dropped), `*` and `?` stop
//! at `/`, `**` spans any number of directories, `!` re-includes, the last matching
//! pattern wins, and a pattern that matches a directory matches everything under it.
//! Lines starting with `#` are comments. `COPY --exclude` patterns use the same matcher.

use std::path::{Path, PathBuf};

use super::ContextError;

#[derive(Clone, Debug)]
struct Rule {
    exclusion: bool,
    text: String,
    parts: Vec<Part>,
    /// The longest run of literal characters in `parts`. A path that does not contain it
    /// cannot match, nor can its parents (prefixes of it): for wildcard rules (`*.md`,
    /// `**/*.map`) one substring search turns most paths away before any matching.
    needle: String,
}

/// A compiled pattern: a sequence of parts matched against a `/`-separated path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Any run of non-`/` characters.
    Star,
    /// `**` (with a following `/` eaten): any run of characters including `/`, at any
    /// depth; at the end of the pattern it matches everything.
    DoubleStar {
        trailing: bool,
    },
    /// One non-`/` character.
    Any,
    Literal(char),
    /// A `[...]` class, kept in Go glob syntax and matched per character.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A list of ignore patterns, in order.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

impl Ignore {
    /// Reads the ignore file for a build: `<dockerfile>.dockerignore` next to the
    /// Dockerfile if it exists, else `<context>/.dockerignore`. No file: nothing ignored.
    pub fn for_build(context: &Path, dockerfile: Option<&Path>) -> Result<Ignore, ContextError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(df) = dockerfile
            && let Some(name) = df.file_name()
        {
            let mut n = name.to_os_string();
            n.push(".dockerignore");
            candidates.push(df.with_file_name(n));
        }
        candidates.push(context.join(".dockerignore"));
        for c in candidates {
            match std::fs::read(&c) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    return Ignore::parse(&text).map_err(|reason| ContextError::Ignore {
                        path: c.clone(),
                        reason,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ContextError::Read { path: c, source }),
            }
        }
        Ok(Ignore::default())
    }

    /// Parses the text of an ignore file.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            // Comments are recognised before trimming, as Docker does.
            if line.starts_with('#') {
                continue;
            }
            let p = line.trim();
            if p.is_empty() {
                continue;
            }
            let (invert, p) = match p.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, p),
            };
            let mut p = if p.is_empty() {
                String::new()
            } else {
                clean(p)
            };
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
            patterns.push(if invert { format!("!{p}") } else { p });
        }
        Ignore::new(&patterns)
    }

    /// Compiles patterns as given (each may start with `!`).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let (exclusion, body) = match p.strip_prefix('!') {
                Some("") => return Err(format!("illegal exclusion pattern: {p:?}")),
                Some(rest) => (true, rest),
                None => (false, p),
            };
            let body = clean(body);
            let parts = compile(&body).map_err(|why| format!("bad pattern {p:?}: {why}"))?;
            rules.push(Rule {
                exclusion,
                text: body,
                needle: longest_literal(&parts),
                parts,
            });
        }
        Ok(Ignore { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule is an exception (`!pattern`).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exclusion)
    }

    /// Whether `path` (relative to the root, `/`-separated) is ignored: the last rule that
    /// matches it, or one of its parent directories, decides.
    pub fn is_ignored(&self, path: &str) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let path = path.trim_matches('/');
        let mut matched = false;
        for rule in &self.rules {
            // An exception can only flip a match, a plain rule only a non-match.
            if rule.exclusion != matched {
                continue;
            }
            // `matches` also matches the parents (prefixes ending before a `/`).
            if path.contains(rule.needle.as_str()) && matches(&rule.parts, path) {
                matched = !rule.exclusion;
            }
        }
        matched
    }

    /// The patterns as cleaned (for messages).
    pub fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                if r.exclusion {
                    format!("!{}", r.text)
                } else {
                    r.text.clone()
                }
            })
            .collect()
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn compile(p: &str) -> Result<Vec<Part>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                parts.push(Part::DoubleStar {
                    trailing: i >= chars.len(),
                });
            }
            '*' => {
                parts.push(Part::Star);
                i += 1;
            }
            '?' => {
                parts.push(Part::Any);
                i += 1;
            }
            '\\' => {
                match chars.get(i + 1) {
                    Some(c) => parts.push(Part::Literal(*c)),
                    None => return Err("trailing '\\'".into()),
                }
                i += 2;
            }
            '[' => {
                let (part, next) = class(&chars, i + 1).ok_or("bad '[' class")?;
                parts.push(part);
                i = next;
            }
            c => {
                parts.push(Part::Literal(c));
                i += 1;
            }
        }
    }
    Ok(parts)
}

/// The longest run of consecutive `Literal` parts (the first of equal length), as text;
/// empty when there is none (every path contains it).
fn longest_literal(parts: &[Part]) -> String {
    let mut best = String::new();
    for run in parts.split(|p| !matches!(p, Part::Literal(_))) {
        if run.len() > best.chars().count() {
            best = run
                .iter()
                .filter_map(|p| match p {
                    Part::Literal(c) => Some(*c),
                    _ => None,
                })
                .collect();
        }
    }
    best
}

fn class(chars: &[char], mut i: usize) -> Option<(Part, usize)> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !ranges.is_empty() {
            return Some((Part::Class { negated, ranges }, i + 1));
        }
        let one = |i: usize| -> Option<(char, usize)> {
            match *chars.get(i)? {
                '-' | ']' => None,
                '\\' => chars.get(i + 1).map(|c| (*c, i + 2)),
                c => Some((c, i + 1)),
            }
        };
        let (lo, next) = one(i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = one(i + 1)?;
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

/// Whether `parts` match `path` or a prefix of it that ends at a `/` (a pattern matching
/// a directory matches everything below it). Memoized over (part, position), so hostile
/// patterns (`*a*a*a*…`) cost O(parts × path) instead of exponential backtracking.
fn matches(parts: &[Part], path: &str) -> bool {
    // A plain name (`node_modules`, `.git`, `dist/app`, most rules): a prefix compare,
    // without the tables below (this runs for every rule and every file of the context).
    if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
        let mut rest = path.chars();
        for p in parts {
            if let Part::Literal(c) = p
                && rest.next() != Some(*c)
            {
                return false;
            }
        }
        let rest = rest.as_str();
        return rest.is_empty() || rest.starts_with('/');
    }
    // The tables are kept per thread and reused: a context walk asks for every file.
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<char>, Vec<Option<bool>>)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return match_with(parts, path, &mut (Vec::new(), Vec::new()));
        };
        match_with(parts, path, &mut scratch)
    })
}

fn match_with(parts: &[Part], path: &str, scratch: &mut (Vec<char>, Vec<Option<bool>>)) -> bool {
    let (name, memo) = scratch;
    name.clear();
    name.extend(path.chars());
    memo.clear();
    memo.resize((parts.len() + 1) * (name.len() + 1), None);
    Matcher { parts, name, memo }.at(0, 0)
}

struct Matcher<'a> {
    parts: &'a [Part],
    name: &'a [char],
    memo: &'a mut Vec<Option<bool>>,
}

impl Matcher<'_> {
    fn at(&mut self, p: usize, n: usize) -> bool {
        let key = p * (self.name.len() + 1) + n;
        if let Some(done) = self.memo[key] {
            return done;
        }
        let r = self.compute(p, n);
        self.memo[key] = Some(r);
        r
    }

    fn compute(&mut self, p: usize, n: usize) -> bool {
        let name = self.name;
        if p == self.parts.len() {
            return n == name.len() || name[n] == '/';
        }
        let one = |ok: bool| ok && n < name.len();
        match &self.parts[p] {
            Part::DoubleStar { trailing: true } => true,
            Part::DoubleStar { trailing: false } => {
                // `(.*/)?`: nothing, or any run ending with '/'.
                self.at(p + 1, n)
                    || (n..name.len()).any(|k| name[k] == '/' && self.at(p + 1, k + 1))
            }
            Part::Star => {
                let mut k = n;
                loop {
                    if self.at(p + 1, k) {
                        return true;
                    }
                    if k >= name.len() || name[k] == '/' {
                        return false;
                    }
                    k += 1;
                }
            }
            Part::Any => one(n < name.len() && name[n] != '/') && self.at(p + 1, n + 1),
            Part::Literal(c) => one(n < name.len() && name[n] == *c) && self.at(p + 1, n + 1),
            Part::Class { negated, ranges } => {
                one(n < name.len()
                    && name[n] != '/'
                    && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&name[n])) != *negated)
                    && self.at(p + 1, n + 1)
            }
        }
    }
}

#[cfg(test)]
#[path = "ignore_tests.rs"]
mod tests;
