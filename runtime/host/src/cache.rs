//! On-disk cache of compiled components.
//!
//! Compiling a component takes tens of milliseconds (seconds for a Python one); loading a
//! compiled artifact takes well under one. But deserializing compiled code is `unsafe` in
//! wasmtime for a reason: a crafted artifact is arbitrary native code. So this cache only ever
//! hands back bytes it wrote itself:
//!
//! - each artifact is sealed with a keyed BLAKE3 MAC over (component digest, engine
//!   compatibility hash, payload), using a random key stored in the cache directory with mode
//!   0600; a file that fails the check is ignored (and replaced);
//! - the artifact file is wasmtime's own format and its MAC a small sidecar (`.mac`), so a
//!   verified artifact is mapped by wasmtime straight from the file, never copied: loading a
//!   35 MiB artifact (a Python component) costs a streamed MAC check, not three copies. The file
//!   stays open from the check to the mapping, and the mapping goes through that descriptor, so
//!   the bytes mapped are the bytes verified even if the name is replaced meanwhile;
//! - the directory (created with mode 0700) and the key must belong to the current user and
//!   not be writable by others; otherwise the runtime refuses to start rather than trust, or
//!   silently re-permission, a folder someone else controls (pointing the cache at `/tmp`
//!   must not `chmod /tmp`);
//! - files are written to a temporary name and renamed, so a crash never leaves a torn artifact.
//!
//! Artifacts are keyed by the component's sha256 and wasmtime's precompile-compatibility hash,
//! so a new wasmtime or a different engine configuration misses cleanly.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// First bytes of a MAC sidecar file (format version 2: MAC beside the artifact).
const MAGIC: &[u8; 8] = b"OPCMAC02";

/// A cached artifact whose MAC checked out, held open until it is mapped.
#[derive(Debug)]
pub struct Artifact {
    file: fs::File,
}

impl Artifact {
    /// A path naming exactly the verified file: its open descriptor, not its name.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// A verified artifact store in one directory.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// Why the cache cannot be used (the runtime then compiles every time).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cache directory {dir} is not safe to use: {why}; make it private to you, choose another with --cache-dir \
         (OPERATOR_CACHE_DIR), or pass --no-cache"
    )]
    Unsafe { dir: PathBuf, why: String },
}

impl ArtifactCache {
    /// The default location: `$OPERATOR_CACHE_DIR`, else `$XDG_CACHE_HOME/operator`, else
    /// `~/.cache/operator`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("OPERATOR_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("operator"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("operator"))
    }

    /// Opens (creating if needed, mode 0700) the cache in `dir` and checks that it and its key
    /// are private to this user. Nothing is ever re-permissioned: an unsafe folder is refused.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let io = |source| CacheError::Io { dir: dir.to_path_buf(), source };
        let artifacts = dir.join("compiled");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&artifacts).map_err(io)?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        for d in [dir, artifacts.as_path()] {
            let meta = fs::symlink_metadata(d).map_err(io)?;
            let unsafe_because = |why: String| CacheError::Unsafe { dir: d.to_path_buf(), why };
            if !meta.is_dir() {
                return Err(unsafe_because("it is not a directory (a symlink is not followed)".into()));
            }
            check_private(&meta, uid, 0o022, "writable by other users").map_err(unsafe_because)?;
        }
        let key = load_or_create_key(&dir.join("key"), uid).map_err(|e| match e {
            KeyError::Io(source) => CacheError::Io { dir: dir.to_path_buf(), source },
            KeyError::Unsafe(why) => CacheError::Unsafe { dir: dir.to_path_buf(), why },
        })?;
        Ok(ArtifactCache { dir: dir.to_path_buf(), key })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact for (digest, compat) lives.
    pub fn path(&self, digest: &str, compat: &str) -> PathBuf {
        self.dir.join("compiled").join(format!("{digest}-{compat}.cwasm"))
    }

    /// The verified artifact, or `None` when absent or not sealed by this cache.
    pub fn get(&self, digest: &str, compat: &str) -> Option<Artifact> {
        let path = self.path(digest, compat);
        let sidecar = fs::read(mac_path(&path)).ok()?;
        let mac = sidecar.strip_prefix(MAGIC.as_slice())?;
        let mac = blake3::Hash::from_slice(mac).ok()?;
        let mut file = fs::File::open(&path).ok()?;
        // Stream the file through the MAC: no buffer the size of the artifact.
        let mut h = self.hasher(digest, compat);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
        // Constant-time comparison.
        if h.finalize() != mac {
            tracing::warn!(digest, "ignoring a compiled artifact that this cache did not seal");
            return None;
        }
        Some(Artifact { file })
    }

    /// Seals and stores an artifact; returns its path.
    pub fn put(&self, digest: &str, compat: &str, payload: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.path(digest, compat);
        let io = |source| CacheError::Io { dir: self.dir.clone(), source };
        let dir = path.parent().unwrap_or(&self.dir);
        // The artifact first, then its MAC: a crash in between leaves an artifact that fails
        // the check, which is recompiled.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(payload).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(MAGIC).map_err(io)?;
        tmp.write_all(self.mac(digest, compat, payload).as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(mac_path(&path)).map_err(|e| io(e.error))?;
        Ok(path)
    }

    fn hasher(&self, digest: &str, compat: &str) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(digest.as_bytes()).update(b"\0").update(compat.as_bytes()).update(b"\0");
        h
    }

    fn mac(&self, digest: &str, compat: &str, payload: &[u8]) -> blake3::Hash {
        let mut h = self.hasher(digest, compat);
        h.update(payload);
        h.finalize()
    }
}

/// The MAC sidecar of an artifact.
fn mac_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".mac");
    PathBuf::from(name)
}

/// Checks that a file or folder is `uid`'s and has none of the `forbidden` mode bits.
fn check_private(meta: &fs::Metadata, uid: u32, forbidden: u32, what: &str) -> Result<(), String> {
    if meta.uid() != uid {
        return Err(format!("it is owned by uid {}, not by you (uid {uid})", meta.uid()));
    }
    if meta.mode() & forbidden != 0 {
        return Err(format!("it is {what} (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

enum KeyError {
    Io(std::io::Error),
    Unsafe(String),
}

impl From<std::io::Error> for KeyError {
    fn from(e: std::io::Error) -> Self {
        KeyError::Io(e)
    }
}

/// Reads the key (not through a symlink, and only if it is the user's alone), or creates it.
fn load_or_create_key(path: &Path, uid: u32) -> Result<[u8; 32], KeyError> {
    let read = |path: &Path| -> Result<Option<[u8; 32]>, KeyError> {
        let mut file =
            match fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(KeyError::Unsafe(format!("its key {} is a symlink", path.display())));
                }
                Err(e) => return Err(e.into()),
            };
        let meta = file.metadata()?;
        check_private(&meta, uid, 0o077, "readable or writable by other users")
            .map_err(|why| KeyError::Unsafe(format!("its key {}: {why}", path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(key) => Ok(Some(key)),
            // A torn key (a crash while writing it): its artifacts fail the MAC anyway.
            Err(_) => {
                fs::remove_file(path)?;
                Ok(None)
            }
        }
    };
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom(&mut key)?;
    let mut tmp = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(0o600))?;
    tmp.write_all(&key)?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(key),
        // Another process created the key first: use theirs.
        Err(_) => read(path)?.ok_or_else(|| KeyError::Io(std::io::Error::other("the cache key vanished"))),
    }
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read as _;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_round_trips_through_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path()).expect("open");
        cache.put("abc", "v1", b"compiled code").expect("put");
        let read = |a: Option<Artifact>| a.map(|a| fs::read(a.path()).expect("read through the descriptor"));
        assert_eq!(read(cache.get("abc", "v1")).as_deref(), Some(b"compiled code".as_slice()));
        assert!(cache.get("abc", "v2").is_none(), "another engine misses");
        // A second handle on the same directory reuses the key.
        let again = ArtifactCache::open(dir.path()).expect("reopen");
        assert_eq!(read(again.get("abc", "v1")).as_deref(), Some(b"compiled code".as_slice()));
    }

    #[test]
    fn an_artifact_the_cache_did_not_seal_is_never_returned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path()).expect("open");
        let path = cache.put("abc", "v1", b"compiled code").expect("put");
        // Tamper with the payload.
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).expect("write");
        assert!(cache.get("abc", "v1").is_none());
        // A file dropped in by someone else, even with a well-formed MAC file.
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&[0u8; 32]);
        fs::write(cache.path("def", "v1"), b"evil").expect("write");
        fs::write(mac_path(&cache.path("def", "v1")), forged).expect("write");
        assert!(cache.get("def", "v1").is_none());
        // An artifact without its MAC.
        fs::remove_file(mac_path(&path)).expect("rm");
        assert!(cache.get("abc", "v1").is_none());

        // A verified artifact keeps its bytes even if the name is replaced after the check.
        cache.put("ghi", "v1", b"sealed").expect("put");
        let artifact = cache.get("ghi", "v1").expect("verified");
        fs::rename(dir.path().join("key"), dir.path().join("key.bak")).expect("mv");
        let swapped = dir.path().join("swap");
        fs::write(&swapped, b"evil").expect("write");
        fs::rename(&swapped, cache.path("ghi", "v1")).expect("swap");
        assert_eq!(fs::read(artifact.path()).expect("read"), b"sealed");
    }

    #[test]
    fn the_key_is_private_to_the_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        ArtifactCache::open(dir.path()).expect("open");
        let mode = fs::metadata(dir.path().join("key")).expect("key").mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn a_folder_others_can_write_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
        let e = ArtifactCache::open(dir.path()).expect_err("world-writable");
        assert!(e.to_string().contains("writable by other users (mode 1777)"), "{e}");
        assert!(e.to_string().contains("--no-cache"), "{e}");
        let mode = fs::metadata(dir.path()).expect("dir").mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the folder's mode was changed");
    }

    #[test]
    fn a_key_others_can_read_or_a_symlinked_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        ArtifactCache::open(dir.path()).expect("open");
        let key = dir.path().join("key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = ArtifactCache::open(dir.path()).expect_err("readable key");
        assert!(e.to_string().contains("readable or writable by other users"), "{e}");

        let other = tempfile::tempdir().expect("tempdir");
        fs::create_dir(other.path().join("compiled")).expect("mkdir");
        std::os::unix::fs::symlink(&key, other.path().join("key")).expect("symlink");
        let e = ArtifactCache::open(other.path()).expect_err("symlinked key");
        assert!(e.to_string().contains("is a symlink"), "{e}");
    }

    #[test]
    fn ownership_is_checked_against_the_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = fs::metadata(dir.path()).expect("meta");
        assert!(check_private(&meta, meta.uid(), 0o022, "x").is_ok());
        let e = check_private(&meta, meta.uid().wrapping_add(1), 0o022, "x").expect_err("another user");
        assert!(e.contains("not by you"), "{e}");
    }
}
