//! Compose's variable interpolation over a compose tree, and `.env` files.
//!
//! The `$VAR` syntax itself is `operator_rules::vars`, shared with the host. Values are
//! interpolated, keys are not. An unset variable with no default becomes the empty string and
//! a warning, as in compose.

use std::collections::BTreeMap;

use operator_rules::vars::{self, Unset};

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

/// Interpolates one string with compose's syntax (`operator_rules::vars`); unset variables
/// that become blank are added to `warnings`, once each.
pub fn interpolate(text: &str, env: &Env, warnings: &mut Vec<String>) -> Result<String, String> {
    vars::interpolate(text, &env.vars, &mut |unset| {
        if let Unset::Blank(name) = unset {
            let w = format!(
                "the {name} variable is not set; defaulting to a blank string (only variables the subject's \
                 manifest declares in [deployment] env are passed from the environment)"
            );
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        String::new()
    })
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
