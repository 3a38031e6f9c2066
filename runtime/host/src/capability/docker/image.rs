//! Image references, parsed by Docker's grammar, and the registry each one is pulled from.
//!
//! A driver names images; the host decides whether the engine may contact the registry an
//! image lives in. An image name is also a channel out of the machine (`registry/x:<secret>`
//! sends the secret as a tag), so references are checked strictly: Docker's grammar, no room
//! for arbitrary text.

/// Docker Hub, however a reference spells it.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed `[registry/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The name as written, without tag or digest (`pingcap/pd`, `127.0.0.1:5000/x`).
    pub name: String,
    /// The registry host (`docker.io` when the name has none), lower-cased.
    pub registry: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        let bad = |why: &str| format!("`{}` is not an image reference: {why}", crate::text::escape(text));
        if text.is_empty() || text.len() > 512 {
            return Err(bad("it must be 1 to 512 characters"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (text, None),
        };
        if let Some(d) = digest {
            let (algo, hex) = d.split_once(':').ok_or_else(|| bad("a digest is `algorithm:hex`"))?;
            let algo_ok = !algo.is_empty()
                && algo.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
            if !algo_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("a digest is `algorithm:hex` with at least 32 hex digits"));
            }
        }
        // A `:` after the last `/` starts the tag; one before it is a registry port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            let first_ok = t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !first_ok || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
                return Err(bad("a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"));
            }
        }
        if name.is_empty() || name.len() > 255 {
            return Err(bad("the name must be 1 to 255 characters"));
        }
        let (registry, path) = match split_registry(name) {
            Some((host, path)) => {
                check_registry(host).map_err(|why| bad(&why))?;
                (normalize_registry(host), path)
            }
            None => (DOCKER_HUB.to_string(), name),
        };
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts {
            if !path_component(p) {
                return Err(bad(&format!(
                    "`{}` is not a path component (lower-case letters and digits, separated by `.`, `_`, `__` or `-`)",
                    crate::text::escape(p)
                )));
            }
        }
        Ok(ImageRef { name: name.to_string(), registry, tag: tag.map(String::from), digest: digest.map(String::from) })
    }

    /// What the pull API wants: the name and one tag or digest (never "every tag").
    pub fn pull_args(&self) -> (String, String) {
        let tag = self.digest.clone().or_else(|| self.tag.clone()).unwrap_or_else(|| "latest".into());
        (self.name.clone(), tag)
    }
}

/// Docker's rule for a name's registry: its first component, when there is a `/` after it and
/// it holds a `.` or a `:` or is `localhost`; `None` means Docker Hub. Returns (registry, path).
pub fn split_registry(name: &str) -> Option<(&str, &str)> {
    let (first, rest) = name.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then_some((first, rest))
}

/// `[a-z0-9]+` separated by `.`, `_`, `__` or `-`+.
fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &p[start..i];
        if sep.is_empty() || !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// A registry host: `host[:port]`, the host a DNS name or an IPv4 address.
pub fn check_registry(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("`{}` has an invalid port", crate::text::escape(host)));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("`{}` is not a registry host", crate::text::escape(host)));
    }
    Ok(())
}

/// One spelling per registry: lower-cased, Docker Hub's aliases folded into `docker.io`.
pub fn normalize_registry(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.into(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(image: &str) -> String {
        ImageRef::parse(image).map(|r| r.registry).unwrap_or_else(|e| e)
    }

    #[test]
    fn references_name_their_registry() {
        assert_eq!(registry("pingcap/pd:v8.5.5"), "docker.io");
        assert_eq!(registry("busybox"), "docker.io");
        assert_eq!(registry("quay.io/coreos/etcd:v3.4.23"), "quay.io");
        assert_eq!(registry("127.0.0.1:5999/x:1"), "127.0.0.1:5999");
        assert_eq!(registry("localhost/x"), "localhost");
        assert_eq!(registry("index.docker.io/library/busybox"), "docker.io");
        assert_eq!(registry("Registry.Example.COM/team/img"), "registry.example.com");
    }

    #[test]
    fn pull_arguments_never_ask_for_every_tag() {
        let pull = |s: &str| ImageRef::parse(s).expect("valid").pull_args();
        assert_eq!(pull("pingcap/pd:v8.5.5"), ("pingcap/pd".into(), "v8.5.5".into()));
        assert_eq!(pull("pingcap/pd"), ("pingcap/pd".into(), "latest".into()));
        assert_eq!(pull("registry:5000/team/img"), ("registry:5000/team/img".into(), "latest".into()));
        assert_eq!(pull("registry:5000/img:1.2"), ("registry:5000/img".into(), "1.2".into()));
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(pull(&format!("img@{digest}")), ("img".into(), digest.clone()));
    }

    #[test]
    fn references_outside_the_grammar_are_refused() {
        for bad in [
            "",
            "-rm",
            "UPPER/case",
            "x y",
            "127.0.0.1:5999/x:",
            "127.0.0.1:5999/x:secret token",
            "img:.hidden",
            "a//b",
            "a/b/",
            "img@sha256:short",
            "host:99999/x",
            "x\n",
            &"a".repeat(600),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["a__b/c-d.e:1.2_3", "x.io:443/a/b/c@sha256:0123456789abcdef0123456789abcdef"] {
            assert!(ImageRef::parse(good).is_ok(), "{good:?} was refused");
        }
    }
}
