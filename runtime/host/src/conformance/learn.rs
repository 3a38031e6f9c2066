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

/// A path's parent prefix when its last segment is a number under at least two segments
/// (`/pd/api/v1/region/id/7` → `/pd/api/v1/region/id/`), else the path itself.
pub fn generalise(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let Some((parent, last)) = trimmed.rsplit_once('/') else { return path.to_string() };
    let id_like = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    // A parent of one segment (`/pd/0`) is too wide to grant for the sake of an id.
    let deep = parent.matches('/').count() >= 2;
    if id_like && deep { format!("{parent}/") } else { path.to_string() }
}

impl Learned {
    /// The needs of these requests (those naming no endpoint are left out). A GET or HEAD path
    /// whose last segment is a number becomes its parent prefix only when two or more numbers
    /// were seen under that parent; anything else is granted exactly.
    pub fn from_requests<'a>(requests: impl IntoIterator<Item = &'a SeenRequest>) -> Learned {
        let mut seen: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for r in requests {
            if r.endpoint != "?" {
                seen.entry((r.endpoint.clone(), r.method.clone())).or_default().insert(r.path.clone());
            }
        }
        let mut learned = Learned::default();
        for ((endpoint, method), paths) in seen {
            let mut ids_under: BTreeMap<String, usize> = BTreeMap::new();
            for p in &paths {
                let g = generalise(p);
                if g != *p {
                    *ids_under.entry(g).or_default() += 1;
                }
            }
            let reads = method == "GET" || method == "HEAD";
            let mut granted: BTreeSet<String> = paths
                .iter()
                .map(|p| {
                    let g = generalise(p);
                    if reads && ids_under.get(&g).is_some_and(|n| *n >= 2) { g } else { p.clone() }
                })
                .collect();
            let all: Vec<String> = granted.iter().cloned().collect();
            granted.retain(|p| !all.iter().any(|q| q != p && covers(q, p)));
            learned.endpoints.entry(endpoint).or_default().methods.insert(method, granted);
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

    /// Grants in `grants` that were used but allow more than what used them: a rule's prefix
    /// that is none of the (generalised) paths the component sent under it (`/` granting
    /// `/pd/api/v1/stores`).
    pub fn wider(&self, grants: &HttpGrants) -> Vec<UnusedGrant> {
        let mut wider = Vec::new();
        for grant in grants.endpoints() {
            let Some(need) = self.endpoints.get(&grant.name) else { continue };
            for rule in &grant.rules {
                for method in &rule.methods {
                    let Some(paths) = need.methods.get(method) else { continue };
                    for prefix in &rule.paths {
                        let under: Vec<&String> = paths.iter().filter(|p| path_has_prefix(p, prefix)).collect();
                        let same = |p: &&String| p.trim_end_matches('/') == prefix.trim_end_matches('/');
                        if !under.is_empty() && !under.iter().any(same) {
                            wider.push(UnusedGrant {
                                endpoint: grant.name.clone(),
                                method: method.clone(),
                                path: prefix.clone(),
                            });
                        }
                    }
                }
            }
        }
        wider
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
            seen("pd", "GET", "/pd/api/v1/0"),
            seen("pd", "POST", "/pd/api/v1/operators/7"),
            seen("pd", "POST", "/pd/api/v1/operators/8"),
            seen("pd", "DELETE", "/pd/api/v1/store/4"),
            seen("pd", "DELETE", "/pd/api/v1/store/5"),
            seen("pd", "GET", "/pd/api/v1/region/id/4"),
            seen("pd", "GET", "/pd/api/v1/region/id/9007199254740993"),
            seen("pd", "POST", "/pd/api/v1/operators"),
            seen("prometheus", "GET", "/api/v1/query"),
            seen("?", "GET", "/elsewhere"),
        ];
        let l = Learned::from_requests(&reqs);
        let pd = &l.endpoints["pd"].methods;
        // One id under a parent is granted exactly; writes are never widened.
        assert_eq!(
            pd["GET"].iter().collect::<Vec<_>>(),
            vec!["/pd/api/v1/0", "/pd/api/v1/region/id/", "/pd/api/v1/stores"]
        );
        // (A grant of a path allows the paths below it: `/operators` covers `/operators/7`.)
        assert_eq!(pd["POST"].iter().collect::<Vec<_>>(), vec!["/pd/api/v1/operators"]);
        assert_eq!(pd["DELETE"].iter().collect::<Vec<_>>(), vec!["/pd/api/v1/store/4", "/pd/api/v1/store/5"]);
        assert!(!l.endpoints.contains_key("?"));
        let toml = l.to_toml(&BTreeMap::from([("pd".to_string(), "http://127.0.0.1:2379".to_string())]));
        let parsed: toml::Table = toml.parse().expect("valid TOML");
        assert_eq!(parsed["endpoints"]["pd"]["url"].as_str(), Some("http://127.0.0.1:2379"));
        assert!(toml.contains("{ methods = [\"POST\"], paths = [\"/pd/api/v1/operators\"] }"), "{toml}");
    }

    #[test]
    fn a_grant_wider_than_its_use_is_named() {
        let text = "[endpoints.pd]\nurl = \"http://127.0.0.1:1\"\nallow = [ { methods = [\"GET\"], paths = [\"/\", \"/pd/api/v1/stores\"] } ]\n";
        let m = crate::manifest::Manifest::parse(std::path::Path::new("m.toml"), text).expect("a manifest");
        let grants = HttpGrants::new(m.endpoints.clone(), None);
        let l = Learned::from_requests(&[seen("pd", "GET", "/pd/api/v1/stores")]);
        let wider: Vec<String> = l.wider(&grants).into_iter().map(|w| w.path).collect();
        assert_eq!(wider, vec!["/".to_string()]);
        assert!(l.unused(&grants).is_empty());
    }

    #[test]
    fn a_learned_section_parses_as_a_manifest() {
        let l = Learned::from_requests(&[seen("pd", "GET", "/pd/api/v1/stores")]);
        let text = l.to_toml(&BTreeMap::new()).replace("http://CHANGE-ME", "http://127.0.0.1:1");
        let m = crate::manifest::Manifest::parse(std::path::Path::new("learned.toml"), &text).expect("a manifest");
        assert!(m.endpoints.contains_key("pd"));
    }
}
