//! Compose's variable syntax: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
//! `${VAR-default}` (unset), `${VAR:?error}`, `${VAR?error}`, `${VAR:+alternative}`,
//! `${VAR+alternative}`, nested inside defaults, and `$$` for a literal `$`.
//!
//! One evaluator for both sides: the compose driver interpolates with the variables it is given
//! (warning, as compose does, when an unset one becomes blank); the host evaluates an `image:`
//! with no variables at all to see whether its registry is written literally ([`with_defaults`]).

use std::collections::BTreeMap;

/// Where variables come from.
pub trait Variables {
    /// The value of `name`, `None` when unset.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Variables for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// No variables at all.
pub struct NoVariables;

impl Variables for NoVariables {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// A reference an unset variable decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unset<'a> {
    /// `$VAR` or `${VAR}`: it became the empty string (compose warns).
    Blank(&'a str),
    /// `${VAR:+alt}` or `${VAR+alt}`: the alternative was left out.
    NoAlternative(&'a str),
}

/// `text` as written, with no variable set: every default applied, and a `$` wherever a variable
/// decides (a reference without a default, an alternative). `None` when it does not parse or a
/// required variable (`${VAR:?}`) is missing.
pub fn with_defaults(text: &str) -> Option<String> {
    interpolate(text, &NoVariables, &mut |_| "$".to_string()).ok()
}

/// Deepest nesting of references inside defaults (`${A:-${B:-${C}}}` is 3).
pub const MAX_DEPTH: usize = 32;

/// Interpolates one string with `vars`; `unset` is asked what to put where an unset variable
/// decides (compose puts nothing). Errors: an unclosed `${`, a bad name or operator, nesting
/// past [`MAX_DEPTH`], a `${VAR:?message}` whose variable is unset.
///
/// Linear in the text per nesting level: it works on byte offsets (every syntax character is
/// ASCII) and copies nothing but the output, so a hostile 4 MiB value costs at most
/// [`MAX_DEPTH`] scans of itself.
pub fn interpolate(
    text: &str,
    vars: &dyn Variables,
    unset: &mut dyn FnMut(Unset<'_>) -> String,
) -> Result<String, String> {
    interpolate_at(text, vars, unset, 0)
}

fn interpolate_at(
    text: &str,
    vars: &dyn Variables,
    unset: &mut dyn FnMut(Unset<'_>) -> String,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err(format!("variables nested more than {MAX_DEPTH} deep in `{}`", excerpt(text)));
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(offset) = text[i..].find('$') {
        let at = i + offset;
        out.push_str(&text[i..at]);
        match bytes.get(at + 1) {
            Some(b'$') => {
                out.push('$');
                i = at + 2;
            }
            Some(b'{') => {
                let end =
                    closing_brace(bytes, at + 1).ok_or_else(|| format!("unclosed `${{` in `{}`", excerpt(text)))?;
                out.push_str(&expand(&text[at + 2..end], vars, unset, depth)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = at + 1;
                let len = name_len(&text[start..]);
                out.push_str(&lookup(&text[start..start + len], vars, unset));
                i = start + len;
            }
            _ => {
                out.push('$');
                i = at + 1;
            }
        }
    }
    out.push_str(&text[i..]);
    Ok(out)
}

/// The offset of the `}` closing the `{` at `open`, counting nested braces.
fn closing_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Length of the variable name at the start of `text`.
fn name_len(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len())
}

/// The start of `text` for an error message: at most 64 bytes, `…` when cut.
fn excerpt(text: &str) -> String {
    const MAX: usize = 64;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn lookup(name: &str, vars: &dyn Variables, unset: &mut dyn FnMut(Unset<'_>) -> String) -> String {
    match vars.get(name) {
        Some(v) => v.to_string(),
        None => unset(Unset::Blank(name)),
    }
}

fn expand(
    inner: &str,
    vars: &dyn Variables,
    unset: &mut dyn FnMut(Unset<'_>) -> String,
    depth: usize,
) -> Result<String, String> {
    let invalid = || format!("invalid interpolation format for `${{{}}}`", excerpt(inner));
    let (name, rest) = inner.split_at(name_len(inner));
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let value = vars.get(name);
    let set = value.is_some();
    let nonempty = value.is_some_and(|v| !v.is_empty());
    // Operators are ASCII: `:-`, `:?`, `:+`, `-`, `?`, `+`.
    let (colon, rest) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (op, arg) = match rest.as_bytes().first() {
        None if !colon => return Ok(lookup(name, vars, unset)),
        Some(op @ (b'-' | b'?' | b'+')) => (*op, &rest[1..]),
        _ => return Err(invalid()),
    };
    // `:` tests for set and non-empty; without it, only for set.
    let present = if colon { nonempty } else { set };
    match op {
        b'-' if present => Ok(value.unwrap_or_default().into()),
        b'-' => interpolate_at(arg, vars, unset, depth + 1),
        b'?' if present => Ok(value.unwrap_or_default().into()),
        b'?' => {
            let msg = interpolate_at(arg, vars, unset, depth + 1)?;
            Err(format!("required variable {} is missing a value: {}", excerpt(name), excerpt(&msg)))
        }
        _ if present => interpolate_at(arg, vars, unset, depth + 1),
        _ => Ok(unset(Unset::NoAlternative(name))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("FROM_DOTENV", "dot")].map(|(k, v)| (k.to_string(), v.to_string())).into()
    }

    fn i(text: &str) -> Result<String, String> {
        interpolate(text, &vars(), &mut |_| String::new())
    }

    #[test]
    fn every_interpolation_form_works() {
        assert_eq!(i("a $SET b ${SET}").as_deref(), Ok("a value b value"));
        assert_eq!(i("${UNSET:-def} ${EMPTY:-def} ${EMPTY-def} ${UNSET-def}").as_deref(), Ok("def def  def"));
        assert_eq!(i("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt}").as_deref(), Ok("alt  alt"));
        assert_eq!(i("${UNSET:-${SET}}").as_deref(), Ok("value"));
        assert_eq!(i("$$SET costs $$5").as_deref(), Ok("$SET costs $5"));
        assert_eq!(i("${FROM_DOTENV}").as_deref(), Ok("dot"));
        assert_eq!(
            i("${UNSET:?set it please}"),
            Err("required variable UNSET is missing a value: set it please".into())
        );
        assert!(i("${SET").is_err());
    }

    #[test]
    fn unset_references_are_reported_by_kind() {
        let mut heard = Vec::new();
        let out = interpolate("x${NOPE}y${ALT:+z}$OTHER", &vars(), &mut |u| {
            heard.push(format!("{u:?}"));
            String::new()
        });
        assert_eq!(out.as_deref(), Ok("xy"));
        assert_eq!(heard, ["Blank(\"NOPE\")", "NoAlternative(\"ALT\")", "Blank(\"OTHER\")"]);
    }

    #[test]
    fn defaults_apply_and_what_a_variable_decides_is_marked() {
        assert_eq!(with_defaults("${REG:-ghcr.io}/team/y:${TAG-1}").as_deref(), Some("ghcr.io/team/y:1"));
        assert_eq!(with_defaults("${REGISTRY}/x:${TAG:+t}").as_deref(), Some("$/x:$"));
        for bad in ["${A:?need A}/x", "${unclosed"] {
            assert_eq!(with_defaults(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_values_are_errors_not_crashes() {
        // A non-ASCII character where an operator goes.
        assert!(i("${Aé}/x").expect_err("bad operator").contains("invalid interpolation format"));
        assert!(i("${A:é}").is_err());
        // Nesting past the cap.
        let deep = format!("{}x{}", "${A:-".repeat(MAX_DEPTH + 2), "}".repeat(MAX_DEPTH + 2));
        assert!(i(&deep).expect_err("too deep").contains("nested more than"));
        let ok = format!("{}x{}", "${A:-".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(i(&ok).as_deref(), Ok("x"));
        // A 4 MiB default inside 300 levels: refused at the cap, quickly and without copies.
        let big = format!("{}{}{}", "${A:-".repeat(300), "x".repeat(4 << 20), "}".repeat(300));
        assert!(i(&big).expect_err("too deep").len() < 200);
        // Long errors quote only the start of the text.
        let unclosed = format!("${{{}", "y".repeat(1 << 20));
        assert!(i(&unclosed).expect_err("unclosed").len() < 200);
    }
}
