//! The checkpoint in a local directory (the default store): one file per entry, written
//! atomically, and a lock file so one running query at a time uses the directory.

use std::fs;
use std::path::PathBuf;

use super::{write_atomic, CheckpointStore, COMMITS, OFFSETS, STATE};
use crate::error::RuntimeError;
use crate::Result;

/// A checkpoint directory: `<dir>/<key>` per entry, `<dir>/lock` held while open.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    /// Holds the directory's lock while open.
    _lock: fs::File,
}

impl DirStore {
    /// Opens (creating when absent) `dir`, refusing it while another query holds it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<DirStore> {
        let dir = dir.into();
        for sub in [OFFSETS, STATE, COMMITS] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| RuntimeError::io("creating", &p, e))?;
        }
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| RuntimeError::io("opening", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(RuntimeError::Checkpoint(format!(
                    "{} is in use by another running query (it holds {}); give this run its \
                     own checkpoint directory or query name",
                    dir.display(),
                    lock_path.display()
                )))
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(RuntimeError::io("locking", &lock_path, e))
            }
        }
        Ok(DirStore { dir, _lock: lock })
    }
}

impl CheckpointStore for DirStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let p = self.dir.join(key);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::io("reading", &p, e)),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        write_atomic(&self.dir.join(key), value)
    }

    fn delete(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let p = self.dir.join(key);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(RuntimeError::io("removing", &p, err)),
            }
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let d = self.dir.join(prefix);
        let rd = fs::read_dir(&d).map_err(|e| RuntimeError::io("listing", &d, e))?;
        let mut v = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| RuntimeError::io("listing", &d, e))?;
            if let Some(name) = entry.file_name().to_str() {
                v.push(name.to_string());
            }
        }
        Ok(v)
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}
