//! What a subject's manifest grants its deployment driver beyond the project's own resources,
//! and how a refusal names the one grant that would allow it.
//!
//! Every grant is as narrow as the request it answers: a hint names the exact path, capability,
//! label, ulimit or address that was refused, never a folder above it or a wildcard.

use std::path::{Path, PathBuf};

use crate::manifest::DockerSection;

/// Grants of `[deployment.docker]`, checked, with their paths resolved against the subject folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerGrants {
    /// The section as the manifest wrote it (capabilities normalized to `NET_ADMIN`).
    pub allow: DockerSection,
    /// `host-paths`, canonical: binds may use them read-only, besides the subject folder.
    pub host_paths: Vec<PathBuf>,
    /// `writable-paths`, canonical: binds may use exactly these read-write (nothing inside one).
    pub writable_paths: Vec<PathBuf>,
    /// Where to say a grant goes (`subjects/x/operator.toml`), if there is a manifest.
    pub manifest: Option<PathBuf>,
    /// The folder whose manifest it is (or would be).
    pub folder: PathBuf,
}

/// Why a set of grants cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{manifest}: [deployment.docker] {message}")]
pub struct GrantError {
    pub manifest: String,
    pub message: String,
}

impl DockerGrants {
    /// The hint that names `grant` as the line to add.
    pub fn hint(&self, grant: &str) -> String {
        match &self.manifest {
            Some(path) => {
                format!("add `{grant}` to [deployment.docker] in {} if this project really needs it", path.display())
            }
            None => format!(
                "no manifest grants this project anything: write `{grant}` in the [deployment.docker] section of a \
                 manifest ({}) and name it with --manifest, if this project really needs it",
                self.folder.join(crate::manifest::MANIFEST_FILE).display()
            ),
        }
    }

    /// True when `key` (a namespaced label) is granted exactly or by a `prefix.` entry.
    pub fn label_granted(&self, key: &str) -> bool {
        self.allow.labels.iter().any(|g| g == key || (g.ends_with('.') && key.starts_with(g.as_str())))
    }

    /// Resolves a manifest's section against the subject folder (relative paths are its) and
    /// checks it: no writable path may be, contain or sit inside another writable path, or be
    /// or contain the subject folder or the manifest (a container could then rewrite the
    /// grants, the compose file or `.env`).
    pub fn resolve(allow: DockerSection, subject_dir: &Path, manifest: Option<PathBuf>) -> Result<Self, GrantError> {
        let mut grants = DockerGrants {
            host_paths: allow.host_paths.iter().map(|p| subject_dir.join(p)).collect(),
            writable_paths: allow.writable_paths.iter().map(|p| subject_dir.join(p)).collect(),
            allow,
            manifest,
            folder: subject_dir.canonicalize().unwrap_or_else(|_| subject_dir.to_path_buf()),
        };
        grants.allow.cap_add = grants.allow.cap_add.iter().map(|c| normalize_capability(c)).collect();
        grants.validate(subject_dir)
    }

    fn validate(mut self, subject_dir: &Path) -> Result<Self, GrantError> {
        let manifest = self.manifest.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "grants".into());
        let err = |message: String| GrantError { manifest: manifest.clone(), message };
        let subject = subject_dir
            .canonicalize()
            .map_err(|e| err(format!("the subject folder {} cannot be read: {e}", subject_dir.display())))?;
        let canonical = |what: &str, p: &Path| {
            p.canonicalize().map_err(|e| err(format!("{what} `{}` cannot be used: {e}", p.display())))
        };
        let manifest_file = self.manifest.as_ref().and_then(|m| m.canonicalize().ok());
        let mut writable = Vec::new();
        for p in &self.writable_paths {
            let real = canonical("writable path", p)?;
            if subject.starts_with(&real) {
                return Err(err(format!(
                    "writable path `{}` is or contains the subject folder {}: containers could rewrite its grants; \
                     keep writable data in named volumes or a folder apart from the manifest",
                    p.display(),
                    subject.display()
                )));
            }
            if let Some(m) = manifest_file.as_ref().filter(|m| m.starts_with(&real)) {
                return Err(err(format!(
                    "writable path `{}` is or contains the manifest {}: containers could rewrite its grants",
                    p.display(),
                    m.display()
                )));
            }
            if let Some(other) = writable.iter().find(|w: &&PathBuf| w.starts_with(&real) || real.starts_with(w)) {
                return Err(err(format!(
                    "writable paths `{}` and `{}` overlap: one lies inside the other",
                    real.display(),
                    other.display()
                )));
            }
            writable.push(real);
        }
        self.writable_paths = writable;
        // A read-only host path that is gone is a plain refusal later, not an error here.
        self.host_paths = self.host_paths.iter().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())).collect();
        Ok(self)
    }
}

/// `cap_net_admin` and `CAP_NET_ADMIN` are `NET_ADMIN`.
pub fn normalize_capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").map(String::from).unwrap_or(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_paths_never_cover_the_subject_folder_or_each_other() {
        let root = tempfile::tempdir().expect("tempdir");
        let subject = root.path().join("subject");
        std::fs::create_dir_all(subject.join("data/inner")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("elsewhere")).expect("mkdir");
        let grants = |paths: &[PathBuf]| DockerGrants { writable_paths: paths.to_vec(), ..DockerGrants::default() };

        let e = grants(std::slice::from_ref(&subject)).validate(&subject).expect_err("the subject folder");
        assert!(e.message.contains("is or contains the subject folder"), "{e}");
        let e = grants(&[root.path().to_path_buf()]).validate(&subject).expect_err("a parent");
        assert!(e.message.contains("is or contains the subject folder"), "{e}");
        let e = grants(&[subject.join("data"), subject.join("data/inner")]).validate(&subject).expect_err("nested");
        assert!(e.message.contains("overlap"), "{e}");

        let ok = grants(&[subject.join("data"), root.path().join("elsewhere")]).validate(&subject).expect("apart");
        assert_eq!(ok.writable_paths.len(), 2);

        std::fs::write(subject.join("operator.toml"), "").expect("write");
        let with_manifest = DockerGrants {
            writable_paths: vec![subject.join("operator.toml")],
            manifest: Some(subject.join("operator.toml")),
            ..DockerGrants::default()
        };
        let e = with_manifest.validate(&subject).expect_err("the manifest");
        assert!(e.message.contains("is or contains the manifest"), "{e}");
    }

    #[test]
    fn namespaced_labels_are_granted_exactly_or_by_prefix() {
        let allow =
            DockerSection { labels: vec!["traefik.enable".into(), "org.example.".into()], ..Default::default() };
        let g = DockerGrants { allow, ..Default::default() };
        assert!(g.label_granted("traefik.enable"));
        assert!(!g.label_granted("traefik.http.routers.x.rule"));
        assert!(g.label_granted("org.example.team"));
        assert!(!g.label_granted("org.examples"));
    }

    #[test]
    fn a_hint_names_the_manifest_to_edit_or_how_to_name_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = DockerGrants::resolve(DockerSection::default(), dir.path(), None).expect("no grants");
        let hint = plain.hint("privileged = true");
        let expected = dir.path().canonicalize().expect("canonical").join("operator.toml");
        assert!(hint.contains(&format!("({})", expected.display())) && hint.contains("--manifest"), "{hint}");
        assert!(hint.contains("[deployment.docker]") && hint.contains("`privileged = true`"), "{hint}");
        let with = DockerGrants { manifest: Some(expected.clone()), ..plain };
        assert!(with.hint("privileged = true").starts_with("add `privileged = true` to [deployment.docker] in"));
    }
}
