//! Fuzz target: `.dockerignore` text and paths through the matcher (and the glob patterns
//! COPY sources use) must never panic or hang; an exception can only re-include.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocibuild::context::glob::Pattern;
use ocibuild::context::ignore::Ignore;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: the path to test; the rest: the ignore file.
    let (path, rules) = text.split_once('\n').unwrap_or((text, ""));
    if Ignore::parse(rules).is_ok() {
        // A final `**` excludes everything, whatever came before: the last match wins.
        let mut all = rules.to_string();
        all.push_str("\n**\n");
        if let Ok(everything) = Ignore::parse(&all) {
            assert!(
                everything.is_ignored(path),
                "{path:?} not ignored by a final **"
            );
        }
    }
    for line in rules.lines().take(8) {
        if let Ok(p) = Pattern::new(line) {
            let _ = p.matches(path);
        }
    }
});
