//! How a project's resources are named (compose's conventions).

/// Compose's rule for a project name: lowercase letters, digits, `-` and `_`, starting with a
/// letter or digit.
pub fn valid_project_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A network or volume of `project` known in the compose file as `key`: `<project>_<key>`.
pub fn resource(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

/// Replica `number` of `service` in `project`, when the file sets no `container_name`:
/// `<project>-<service>-<number>`.
pub fn container(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_composes_conventions() {
        assert_eq!(resource("tikv", "default"), "tikv_default");
        assert_eq!(container("tikv", "pd", 1), "tikv-pd-1");
        assert!(valid_project_name("tikv") && valid_project_name("0-a_b"));
        assert!(!valid_project_name("Tikv") && !valid_project_name("_x") && !valid_project_name(""));
    }
}
