//! Small filesystem helpers shared by the log and the manager: directory fsync and atomic
//! file replacement (write a temp file, fsync it, rename over the target, fsync the directory),
//! so a crash leaves either the old or the new content, never a torn mix.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};

/// Fsyncs a directory so that creates, renames and deletes inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Atomically replaces `path` with `contents` (tmp + fsync + rename + dir fsync). On failure
/// the temp file is removed again (a full disk used to leave a 0-byte one behind each time).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    replace_file(path, contents, true)
}

/// [`write_atomic`], with the fsyncs only when `fsync`: without them the new content survives
/// a process crash (kill -9: the page cache stays) but maybe not a power loss.
pub fn replace_file(path: &Path, contents: &[u8], fsync: bool) -> Result<()> {
    // A short temp name beside the target: `<name>.tmp` would pass the 255-byte file name
    // limit for the longest legal topic names (249 characters + ".json").
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(contents)?;
            if fsync {
                f.sync_all()?;
            }
            Ok(())
        })
        .map_err(|e| LogError::io(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| LogError::io(path, e)));
    if let Err(e) = written {
        if let Err(rm) = remove_if_exists(&tmp) {
            tracing::warn!(error = %rm, "cannot remove temp file of a failed write; it goes on the next start");
        }
        return Err(e);
    }
    if let Some(parent) = path.parent().filter(|_| fsync) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tmp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    /// Regression (issue 12): a failed checkpoint write left a `.<uuid>.tmp` file behind each
    /// time. Here the rename fails (the target is a non-empty directory).
    #[test]
    fn failed_atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("checkpoint");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"x").unwrap();
        assert!(write_atomic(&target, b"0\n0\n").is_err());
        assert_eq!(tmp_files(dir.path()), Vec::<String>::new());
        // And a successful write leaves none either.
        let ok = dir.path().join("ok");
        write_atomic(&ok, b"data").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"data");
        assert_eq!(tmp_files(dir.path()), Vec::<String>::new());
    }
}
