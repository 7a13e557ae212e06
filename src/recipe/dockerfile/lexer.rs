//! Splitting a Dockerfile into logical instructions, as BuildKit's parser does: parser
//! directives at the very top (`# escape=`, `# syntax=`), comments, line continuations
//! with the escape character (comment and blank lines inside a continuation are
//! skipped), and heredoc bodies (`<<EOF`, `<<-EOF`, quoted `<<"EOF"`) for the
//! instructions that take them. Every instruction keeps the line it starts on.

use super::DfError;

/// Parser directives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    pub escape: char,
    pub syntax: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
        }
    }
}

/// A heredoc attached to an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The body, each line ending with `\n` (leading tabs removed for `<<-`).
    pub content: String,
    /// Unquoted delimiter: variables in the body are expanded.
    pub expand: bool,
}

/// One instruction before interpretation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawInstruction {
    /// 1-based line of the instruction keyword.
    pub line: usize,
    /// Lower-cased keyword.
    pub keyword: String,
    /// Everything after the keyword, continuations joined, leading whitespace trimmed.
    pub rest: String,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lexed {
    pub directives: Directives,
    pub instructions: Vec<RawInstruction>,
}

/// Instructions whose arguments may introduce heredocs.
const HEREDOC_INSTRUCTIONS: &[&str] = &["add", "copy", "run"];

pub fn lex(text: &str) -> Result<Lexed, DfError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (directives, mut i) = directives(&lines)?;
    let esc = directives.escape;
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i + 1;
        let first = trim_ws_start(lines[i]);
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let (mut joined, mut done) = strip_continuation(first, esc);
        while !done && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let t = trim_ws_start(raw);
            if t.starts_with('#') || t.trim().is_empty() {
                continue;
            }
            let (part, d) = strip_continuation(raw, esc);
            joined.push_str(&part);
            done = d;
        }
        let trimmed = joined.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (keyword, rest) = match trimmed.find([' ', '\t']) {
            Some(p) => (&trimmed[..p], trim_ws_start(&trimmed[p..])),
            None => (trimmed, ""),
        };
        let keyword = keyword.to_ascii_lowercase();
        let mut heredocs = Vec::new();
        if HEREDOC_INSTRUCTIONS.contains(&keyword.as_str()) {
            for (name, expand, chomp) in heredoc_markers(rest) {
                let (content, next) =
                    read_heredoc(&lines, i, &name, chomp).ok_or_else(|| DfError {
                        line: start,
                        message: format!(
                            "unterminated heredoc <<{name}: no line \"{name}\" ends it"
                        ),
                    })?;
                i = next;
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        instructions.push(RawInstruction {
            line: start,
            keyword,
            rest: rest.to_string(),
            heredocs,
        });
    }
    Ok(Lexed {
        directives,
        instructions,
    })
}

fn trim_ws_start(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// Reads the directive block at the top; returns the directives and the first line index
/// after it. A directive is `# name=value` before any other line (a blank line, a plain
/// comment or an instruction ends the block).
fn directives(lines: &[&str]) -> Result<(Directives, usize), DfError> {
    let mut d = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((name, value)) = directive(line) else {
            return Ok((d, i));
        };
        if seen.contains(&name) {
            return Err(DfError {
                line: i + 1,
                message: format!("only one {name} parser directive can be used"),
            });
        }
        match name.as_str() {
            "escape" => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(DfError {
                            line: i + 1,
                            message: format!("invalid escape token {other:?}: must be ` or \\"),
                        });
                    }
                }
            }
            "syntax" => d.syntax = Some(value),
            // `check` and unknown directives are accepted and ignored, as BuildKit does.
            _ => {}
        }
        seen.push(name);
    }
    Ok((d, lines.len()))
}

/// `# name = value` with a name of letters and digits.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = trim_ws_start(line).strip_prefix('#')?;
    let rest = rest.trim_start();
    let eq = rest.find('=')?;
    let name = rest[..eq].trim_end();
    let mut chars = name.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = rest[eq + 1..].trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

/// Removes a trailing escape character (followed only by spaces/tabs). Returns the line
/// and whether the instruction ends here.
fn strip_continuation(line: &str, esc: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(esc) {
        Some(body) => (body.to_string(), false),
        None => (line.to_string(), true),
    }
}

/// The heredoc markers among an instruction's arguments: `<<NAME`, `<<-NAME`,
/// `<<"NAME"`, `<<'NAME'` (quoted: no expansion). Returns (name, expand, chomp tabs).
fn heredoc_markers(rest: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    for word in rest.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let Some(body) = word.strip_prefix("<<") else {
            continue;
        };
        if body.starts_with('<') {
            continue;
        }
        let (chomp, body) = match body.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, body),
        };
        let quoted = ['"', '\'']
            .iter()
            .find_map(|q| body.strip_prefix(*q).and_then(|b| b.strip_suffix(*q)));
        let (name, expand) = match quoted {
            Some(n) => (n, false),
            None => (body, true),
        };
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            out.push((name.to_string(), expand, chomp));
        }
    }
    out
}

/// Reads a heredoc body starting at line index `from`; returns it and the index after
/// the terminator line.
fn read_heredoc(lines: &[&str], from: usize, name: &str, chomp: bool) -> Option<(String, usize)> {
    let mut body = String::new();
    for (k, line) in lines.iter().enumerate().skip(from) {
        let l = if chomp {
            line.trim_start_matches('\t')
        } else {
            line
        };
        if l == name {
            return Some((body, k + 1));
        }
        body.push_str(l);
        body.push('\n');
    }
    None
}

#[cfg(test)]
#[path = "lexer_tests.rs"]
mod tests;
