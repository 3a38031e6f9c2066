//! Text from components and subjects made safe for a terminal.
//!
//! Anything a component returns, logs or reports, and anything a subject's files or containers
//! print, may carry terminal control sequences: `ESC [2K` erases the line, `CR` returns to its
//! start, C1 codes (`U+009B`) act as `ESC [` on some terminals, and bidirectional overrides
//! reorder what is shown. Printed raw, a hostile driver could overwrite a real error with a fake
//! "deployment finished". Every such text goes through [`escape`] (one line) or
//! [`escape_lines`] (newlines kept) before it is printed: control characters become visible
//! escapes (`\x1b`, `\u{202e}`) instead of acting.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters that must not reach a terminal raw (tab excepted).
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    match c {
        '\t' => false,
        '\n' => !keep_newlines,
        // C0, DEL, C1.
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        // Bidirectional embeddings, overrides and isolates; line and paragraph separators.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

fn escape_with(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_unsafe(c, keep_newlines) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// One line of foreign text: every control character, newlines included, escaped.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, false)
}

/// Foreign text that may span lines: newlines and tabs kept, other control characters escaped.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, true)
}

/// JSON text with the characters serde_json leaves raw (DEL, C1, bidi controls) written as
/// `\uXXXX` escapes: still the same JSON value, but inert on a terminal. serde_json already
/// escapes C0, and outside strings its output is ASCII, so this only touches string contents.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(|c| is_unsafe(c, true)) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c, true) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_become_visible_escapes() {
        assert_eq!(escape("\x1b[2K\rdeployment finished"), "\\x1b[2K\\x0ddeployment finished");
        assert_eq!(escape("a\nb\tc"), "a\\x0ab\tc");
        assert_eq!(escape_lines("a\nb\x07"), "a\nb\\x07");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}def"), "abc\\u{202e}def");
    }

    #[test]
    fn plain_text_is_not_copied() {
        assert!(matches!(escape("tikv1:20160 — up ✔"), Cow::Borrowed(_)));
        assert!(matches!(escape_lines("line one\nline two"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_json() {
        let value = serde_json::json!({ "message": "x\u{9b}y\u{7f}\u{1b}" });
        let text = serde_json::to_string(&value).expect("json");
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| is_unsafe(c, true)), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
    }
}
