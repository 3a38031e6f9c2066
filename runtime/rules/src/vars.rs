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

/// Interpolates one string with `vars`; `unset` is asked what to put where an unset variable
/// decides (compose puts nothing). Errors: an unclosed `${`, a bad name, a `${VAR:?message}` whose variable is unset.
pub fn interpolate(
    text: &str,
    vars: &dyn Variables,
    unset: &mut dyn FnMut(Unset<'_>) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                // Find the matching brace, allowing nesting in defaults.
                let mut depth = 0;
                let mut end = None;
                for (j, c) in chars.iter().enumerate().skip(i + 1) {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&expand(&inner, vars, unset)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                out.push_str(&lookup(&name, vars, unset));
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn lookup(name: &str, vars: &dyn Variables, unset: &mut dyn FnMut(Unset<'_>) -> String) -> String {
    match vars.get(name) {
        Some(v) => v.to_string(),
        None => unset(Unset::Blank(name)),
    }
}

fn expand(inner: &str, vars: &dyn Variables, unset: &mut dyn FnMut(Unset<'_>) -> String) -> Result<String, String> {
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("invalid interpolation format for `${{{inner}}}`"));
    }
    let value = vars.get(name);
    let set = value.is_some();
    let nonempty = value.is_some_and(|v| !v.is_empty());
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        rest.split_at(1)
    };
    match op {
        "" => Ok(lookup(name, vars, unset)),
        ":-" => {
            if nonempty {
                Ok(value.unwrap_or_default().into())
            } else {
                interpolate(arg, vars, unset)
            }
        }
        "-" => {
            if set {
                Ok(value.unwrap_or_default().into())
            } else {
                interpolate(arg, vars, unset)
            }
        }
        ":?" | "?" => {
            let ok = if op == ":?" { nonempty } else { set };
            if ok {
                Ok(value.unwrap_or_default().into())
            } else {
                let msg = interpolate(arg, vars, unset)?;
                Err(format!("required variable {name} is missing a value: {msg}"))
            }
        }
        ":+" | "+" => {
            if (op == ":+" && nonempty) || (op == "+" && set) {
                interpolate(arg, vars, unset)
            } else {
                Ok(unset(Unset::NoAlternative(name)))
            }
        }
        _ => Err(format!("invalid interpolation format for `${{{inner}}}`")),
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
}
