//! "Did you mean …?": the known name nearest to a mistyped one.

/// The entry of `known` nearest to `typed`, if it is close enough to be a typo: one edit
/// (a letter added, dropped, changed, or two swapped) for names of up to five letters,
/// two for longer ones. Never `typed` itself.
pub fn closest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if typed.chars().count() <= 5 { 1 } else { 2 };
    known
        .into_iter()
        .filter(|k| *k != typed)
        .map(|k| (distance(typed, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Edits between `a` and `b`: insertions, deletions, substitutions and swaps of two
/// neighbours (optimal string alignment), so `biuld` is one edit from `build`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for swaps), one back, and the one being filled.
    let mut older: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(older[j - 2] + 1);
            }
            row[j] = d;
        }
        older = std::mem::replace(&mut prev, row);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_far_names() {
        assert_eq!(distance("biuld", "build"), 1);
        assert_eq!(distance("amd65", "amd64"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(closest("biuld", ["build", "test"]), Some("build"));
        assert_eq!(closest("amd65", ["386", "amd64", "arm64"]), Some("amd64"));
        assert_eq!(closest("linus", ["linux", "windows"]), Some("linux"));
        assert_eq!(closest("nodes", ["node", "base"]), Some("node"));
        assert_eq!(closest("alpine", ["build", "final"]), None);
        assert_eq!(closest("bsae", ["base"]), Some("base"));
        assert_eq!(closest("ab", ["cd"]), None);
        assert_eq!(
            closest("build", ["build"]),
            None,
            "the same name is no typo"
        );
        assert_eq!(closest("buildr", ["builder"]), Some("builder"));
    }
}
