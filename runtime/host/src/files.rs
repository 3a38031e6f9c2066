//! Reading a file someone else may have put there (a subject's manifest, compose file, `.env`,
//! a component): a regular file only (a FIFO would block, `/dev/zero` never ends) and never past
//! a size limit, whatever the file says its size is.

use std::io::Read as _;
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedRead {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    /// `size` is what the file said, or what was read before the limit stopped it.
    #[error("{size} bytes, above the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
}

/// Reads `path`, a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedRead> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(BoundedRead::NotAFile);
    }
    if meta.len() > limit {
        return Err(BoundedRead::TooLarge { size: meta.len(), limit });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    // The file may have grown since its size was read.
    if bytes.len() as u64 > limit {
        return Err(BoundedRead::TooLarge { size: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").expect("write");
        assert_eq!(read_bounded(&file, 5).expect("fits"), b"12345");
        assert!(matches!(read_bounded(&file, 4), Err(BoundedRead::TooLarge { size: 5, limit: 4 })));
        assert!(matches!(read_bounded(dir.path(), 5), Err(BoundedRead::NotAFile)));
        assert!(matches!(read_bounded(Path::new("/dev/zero"), 5), Err(BoundedRead::NotAFile)));
    }
}
