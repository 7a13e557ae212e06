//! Fuzz target: any text through the Dockerfile lexer, instruction typing and variable
//! expansion must give a result or an error with a line number, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocibuild::recipe::dockerfile::{expand, instructions, lexer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |n: &str| match n {
        "A" => Some("apple pie".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    match lexer::lex(text) {
        Err(e) => assert!(e.line >= 1),
        Ok(lexed) => {
            let esc = lexed.directives.escape;
            for raw in &lexed.instructions {
                assert!(raw.line >= 1);
                match instructions::parse(raw, esc) {
                    Ok(loc) => assert_eq!(loc.line, raw.line),
                    Err(e) => assert_eq!(e.line, raw.line),
                }
                let _ = expand::word(&raw.rest, esc, &lookup);
                let _ = expand::words(&raw.rest, esc, &lookup);
                let _ = expand::heredoc(&raw.rest, &lookup);
            }
        }
    }
});
