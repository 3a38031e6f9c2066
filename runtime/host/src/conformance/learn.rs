//! `--learn`: the smallest manifest `allow` section covering the requests a component made,
//! and how it compares with the grants it asks for.
//!
//! Paths are generalised only where ids vary: a last segment that is a number (or a long hex
//! or UUID token) becomes its parent prefix (`/pd/api/v1/region/id/42` → `/pd/api/v1/region/id/`),
//! which is how the project's own manifests grant per-object paths. Everything else is granted
//! exactly, and a path already covered by another prefix is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::probe::SeenRequest;
use crate::capability::http::{HttpGrants, path_has_prefix};

/// What a component needs of one endpoint: per method, the path prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointNeed {
    pub methods: BTreeMap<String, BTreeSet<String>>,
}

/// The grants a component needs, by endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Learned {
    pub endpoints: BTreeMap<String, EndpointNeed>,
}

/// A grant the manifest gives that no request used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusedGrant {
    pub endpoint: String,
    pub method: String,
    pub path: String,
}

/// A path's grant: itself, or its parent when its last segment is an id.
pub fn generalise(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let Some((parent, last)) = trimmed.rsplit_once('/') else { return path.to_string() };
    let id_like = (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || (last.len() >= 16 && last.bytes().all(|b| b.is_ascii_hexdigit()))
        || (last.len() == 36 && last.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    if id_like && !parent.is_empty() { format!("{parent}/") } else { path.to_string() }
}

impl Learned {
    /// The needs of these requests (those naming no endpoint are left out).
    pub fn from_requests<'a>(requests: impl IntoIterator<Item = &'a SeenRequest>) -> Learned {
        let mut learned = Learned::default();
        for r in requests {
            if r.endpoint == "?" {
                continue;
            }
            let paths =
                learned.endpoints.entry(r.endpoint.clone()).or_default().methods.entry(r.method.clone()).or_default();
            paths.insert(generalise(&r.path));
        }
        for need in learned.endpoints.values_mut() {
            for paths in need.methods.values_mut() {
                let all: Vec<String> = paths.iter().cloned().collect();
                paths.retain(|p| !all.iter().any(|q| q != p && covers(q, p)));
            }
        }
        learned
    }

    /// The manifest section, with each endpoint's URL from `urls` (else a placeholder).
    pub fn to_toml(&self, urls: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for (name, need) in &self.endpoints {
            let url = urls.get(name).cloned().unwrap_or_else(|| "http://CHANGE-ME".into());
            let _ = writeln!(out, "[endpoints.{name}]\nurl = {}\nallow = [", toml_string(&url));
            for (method, paths) in &need.methods {
                let paths: Vec<String> = paths.iter().map(|p| toml_string(p)).collect();
                let _ = writeln!(out, "  {{ methods = [{}], paths = [{}] }},", toml_string(method), paths.join(", "));
            }
            out.push_str("]\n\n");
        }
        if out.is_empty() {
            out.push_str("# The component made no HTTP request: it needs no endpoint.\n");
        }
        out.trim_end().to_string() + "\n"
    }

    /// Grants in `grants` that none of the needs uses (each rule's method and path prefix).
    pub fn unused(&self, grants: &HttpGrants) -> Vec<UnusedGrant> {
        let mut unused = Vec::new();
        for grant in grants.endpoints() {
            let need = self.endpoints.get(&grant.name);
            for rule in &grant.rules {
                for method in &rule.methods {
                    for prefix in &rule.paths {
                        let used = need
                            .and_then(|n| n.methods.get(method))
                            .is_some_and(|paths| paths.iter().any(|p| path_has_prefix(p, prefix)));
                        if !used {
                            unused.push(UnusedGrant {
                                endpoint: grant.name.clone(),
                                method: method.clone(),
                                path: prefix.clone(),
                            });
                        }
                    }
                }
            }
        }
        unused
    }
}

/// True when a grant of prefix `q` allows path `p`.
fn covers(q: &str, p: &str) -> bool {
    if q.ends_with('/') { p.starts_with(q) } else { path_has_prefix(p, q) }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(endpoint: &str, method: &str, path: &str) -> SeenRequest {
        SeenRequest {
            endpoint: endpoint.into(),
            method: method.into(),
            path: path.into(),
            status: Some(200),
            error_body: None,
        }
    }

    #[test]
    fn ids_become_their_parent_prefix_and_covered_paths_go() {
        let reqs = vec![
            seen("pd", "GET", "/pd/api/v1/stores"),
            seen("pd", "GET", "/pd/api/v1/region/id/4"),
            seen("pd", "GET", "/pd/api/v1/region/id/9007199254740993"),
            seen("pd", "POST", "/pd/api/v1/operators"),
            seen("prometheus", "GET", "/api/v1/query"),
            seen("?", "GET", "/elsewhere"),
        ];
        let l = Learned::from_requests(&reqs);
        let pd = &l.endpoints["pd"].methods;
        assert_eq!(pd["GET"].iter().collect::<Vec<_>>(), vec!["/pd/api/v1/region/id/", "/pd/api/v1/stores"]);
        assert_eq!(pd["POST"].iter().collect::<Vec<_>>(), vec!["/pd/api/v1/operators"]);
        assert!(!l.endpoints.contains_key("?"));
        let toml = l.to_toml(&BTreeMap::from([("pd".to_string(), "http://127.0.0.1:2379".to_string())]));
        let parsed: toml::Table = toml.parse().expect("valid TOML");
        assert_eq!(parsed["endpoints"]["pd"]["url"].as_str(), Some("http://127.0.0.1:2379"));
        assert!(toml.contains("{ methods = [\"POST\"], paths = [\"/pd/api/v1/operators\"] }"), "{toml}");
    }

    #[test]
    fn a_learned_section_parses_as_a_manifest() {
        let l = Learned::from_requests(&[seen("pd", "GET", "/pd/api/v1/stores")]);
        let text = l.to_toml(&BTreeMap::new()).replace("http://CHANGE-ME", "http://127.0.0.1:1");
        let m = crate::manifest::Manifest::parse(std::path::Path::new("learned.toml"), &text).expect("a manifest");
        assert!(m.endpoints.contains_key("pd"));
    }
}
