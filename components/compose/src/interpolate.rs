//! Compose's variable interpolation and `.env` files.
//!
//! `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alternative}`, `${VAR+alternative}`, nested inside
//! defaults, and `$$` for a literal `$`. Values are interpolated, keys are not. An unset
//! variable with no default becomes the empty string and a warning, as in compose.

use std::collections::BTreeMap;

use crate::yaml::{Kind, Node};

/// The variables interpolation sees: the operator's environment (only what the host passes,
/// the variables the manifest declares) over the project's `.env`.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// `.env` values, overridden by the process environment (compose's precedence).
    pub fn new(process: &[(String, String)], dotenv: &[(String, String)]) -> Self {
        let mut vars: BTreeMap<String, String> = dotenv.iter().cloned().collect();
        vars.extend(process.iter().cloned());
        Env { vars }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.insert(name.into(), value.into());
    }
}

/// Interpolates one string; unset variables are added to `warnings`.
pub fn interpolate(text: &str, env: &Env, warnings: &mut Vec<String>) -> Result<String, String> {
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
                out.push_str(&expand(&inner, env, warnings)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                out.push_str(&lookup(&name, env, warnings));
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

fn lookup(name: &str, env: &Env, warnings: &mut Vec<String>) -> String {
    match env.get(name) {
        Some(v) => v.to_string(),
        None => {
            let w = format!(
                "the {name} variable is not set; defaulting to a blank string (only variables the subject's \
                 manifest declares in [deployment] env are passed from the environment)"
            );
            if !warnings.contains(&w) {
                warnings.push(w);
            }
            String::new()
        }
    }
}

fn expand(inner: &str, env: &Env, warnings: &mut Vec<String>) -> Result<String, String> {
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("invalid interpolation format for `${{{inner}}}`"));
    }
    let value = env.get(name);
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
        "" => Ok(lookup(name, env, warnings)),
        ":-" => {
            if nonempty {
                Ok(value.unwrap_or_default().into())
            } else {
                interpolate(arg, env, warnings)
            }
        }
        "-" => {
            if set {
                Ok(value.unwrap_or_default().into())
            } else {
                interpolate(arg, env, warnings)
            }
        }
        ":?" | "?" => {
            let ok = if op == ":?" { nonempty } else { set };
            if ok {
                Ok(value.unwrap_or_default().into())
            } else {
                let msg = interpolate(arg, env, warnings)?;
                Err(format!("required variable {name} is missing a value: {msg}"))
            }
        }
        ":+" => {
            if nonempty {
                interpolate(arg, env, warnings)
            } else {
                Ok(String::new())
            }
        }
        "+" => {
            if set {
                interpolate(arg, env, warnings)
            } else {
                Ok(String::new())
            }
        }
        _ => Err(format!("invalid interpolation format for `${{{inner}}}`")),
    }
}

/// Interpolates every string value in a tree (keys are left alone). Errors carry the line.
pub fn interpolate_tree(node: &mut Node, env: &Env, warnings: &mut Vec<String>) -> Result<(), (u64, String)> {
    let line = node.line;
    match &mut node.kind {
        Kind::Str(s) => {
            *s = interpolate(s, env, warnings).map_err(|e| (line, e))?;
        }
        Kind::Seq(items) => {
            for n in items {
                interpolate_tree(n, env, warnings)?;
            }
        }
        Kind::Map(entries) => {
            for (_, n) in entries {
                interpolate_tree(n, env, warnings)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parses a `.env` file: `KEY=value`, `export KEY=value`, quotes, `#` comments. Values may use
/// variables defined earlier in the file or in the environment.
pub fn parse_dotenv(text: &str, process: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(".env:{}: expected KEY=VALUE, got {raw:?}", n + 1));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
            return Err(format!(".env:{}: `{key}` is not a variable name", n + 1));
        }
        let value = value.trim();
        let env = Env::new(process, &out);
        let value = if let Some(v) = value.strip_prefix('\'') {
            v.strip_suffix('\'').ok_or_else(|| format!(".env:{}: unclosed single quote", n + 1))?.to_string()
        } else if let Some(v) = value.strip_prefix('"') {
            let body = v.strip_suffix('"').ok_or_else(|| format!(".env:{}: unclosed double quote", n + 1))?;
            let unescaped = body.replace("\\n", "\n").replace("\\t", "\t").replace("\\\"", "\"").replace("\\\\", "\\");
            interpolate(&unescaped, &env, &mut Vec::new()).map_err(|e| format!(".env:{}: {e}", n + 1))?
        } else {
            let v = match value.find(" #") {
                Some(i) => value[..i].trim_end(),
                None => value,
            };
            interpolate(v, &env, &mut Vec::new()).map_err(|e| format!(".env:{}: {e}", n + 1))?
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        let process = vec![("SET".to_string(), "value".to_string()), ("EMPTY".to_string(), String::new())];
        Env::new(&process, &[("FROM_DOTENV".into(), "dot".into()), ("SET".into(), "overridden".into())])
    }

    fn i(text: &str) -> Result<String, String> {
        interpolate(text, &env(), &mut Vec::new())
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
    fn unset_variables_warn_and_become_empty() {
        let mut w = Vec::new();
        assert_eq!(interpolate("x${NOPE}y", &env(), &mut w).as_deref(), Ok("xy"));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("the NOPE variable is not set; defaulting to a blank string"), "{w:?}");
    }

    #[test]
    fn dotenv_files_parse_like_compose() {
        let text = "# comment\nexport A=1\nB='lit $A'\nC=\"x\\ny $A\"\nD=plain # note\nE=${A}2\n";
        let vars = parse_dotenv(text, &[]).expect("parses");
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "lit $A".into()),
                ("C".into(), "x\ny 1".into()),
                ("D".into(), "plain".into()),
                ("E".into(), "12".into()),
            ]
        );
        assert!(parse_dotenv("JUSTAKEY\n", &[]).expect_err("bad").starts_with(".env:1:"));
    }
}
