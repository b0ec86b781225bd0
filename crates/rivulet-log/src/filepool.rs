//! A bounded pool of open segment files.
//!
//! Every segment used to hold its `.log` file open for its whole life (and the active segment
//! its two index files too), so descriptors grew with partitions × segments: a few thousand
//! partitions reached the process's file limit, and a broker whose topics needed more
//! descriptors than the limit could not even start. Segments now hold a [`PooledFile`]: a path
//! and an id. The pool keeps at most `capacity` files open and closes the least recently used
//! one when it needs room; the next use opens the file again (one `open`, cheap next to the
//! I/O it precedes).
//!
//! A file with writes not yet fsynced is never closed by the pool: fsync through a later
//! descriptor would flush the same pages, but a write-back error that happened while no
//! descriptor was open might not be reported to it, and the broker must never acknowledge data
//! whose fsync failed. Such files are few (the active segments written since the last group
//! commit) and become closable as soon as their fsync is recorded ([`PooledFile::mark_clean`]).
//! The capacity is therefore soft by that many files, and by the handles callers still hold
//! (an `Arc<File>` stays valid, and open, until its last clone is dropped).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{LogError, Result};

/// Open-file budget used when the caller does not choose one: a quarter of the process's soft
/// descriptor limit (the rest is left to sockets, directories being read and everything else),
/// between 64 and 4096. Files beyond are re-opened on demand (one `open`, microseconds), so
/// only the hot set of partitions needs to fit.
pub fn default_max_open_files() -> usize {
    (soft_fd_limit() / 4).clamp(64, 4096)
}

/// The soft `RLIMIT_NOFILE` from `/proc/self/limits` (no `unsafe`, no extra dependency);
/// 1024, the usual default, when it cannot be read.
fn soft_fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        })
        .unwrap_or(1024)
}

#[derive(Debug)]
struct Slot {
    file: Arc<File>,
    /// Position in `lru`.
    tick: u64,
    /// Written since its last recorded fsync: must stay open (see the module docs).
    dirty: bool,
}

#[derive(Debug, Default)]
struct PoolState {
    clock: u64,
    open: HashMap<u64, Slot>,
    /// tick -> id, oldest first.
    lru: BTreeMap<u64, u64>,
}

/// Counters of the pool's work, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePoolStats {
    pub capacity: usize,
    /// Files open through the pool right now.
    pub open: usize,
    /// Files opened (first opens and re-opens after eviction).
    pub opens: u64,
    /// Files closed to make room.
    pub evictions: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct FilePool {
    capacity: usize,
    state: Mutex<PoolState>,
    next_id: AtomicU64,
    opens: AtomicU64,
    evictions: AtomicU64,
}

impl FilePool {
    /// A pool keeping at most `capacity` (at least 1) files open.
    pub fn new(capacity: usize) -> Arc<FilePool> {
        Arc::new(FilePool {
            capacity: capacity.max(1),
            state: Mutex::new(PoolState::default()),
            next_id: AtomicU64::new(1),
            opens: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> FilePoolStats {
        FilePoolStats {
            capacity: self.capacity,
            open: self.state.lock().open.len(),
            opens: self.opens.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Closes clean files, least recently used first, until at most `keep` are open.
    fn evict_to(&self, st: &mut PoolState, keep: usize) {
        if st.open.len() <= keep {
            return;
        }
        let mut victims = Vec::new();
        for (&tick, &id) in &st.lru {
            if st.open.len() - victims.len() <= keep {
                break;
            }
            if st.open.get(&id).is_some_and(|s| !s.dirty) {
                victims.push((tick, id));
            }
        }
        for (tick, id) in victims {
            st.lru.remove(&tick);
            st.open.remove(&id);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The open file of `id`, marking it most recently used (and dirty if `write`).
    fn lookup(&self, id: u64, write: bool) -> Option<Arc<File>> {
        let mut st = self.state.lock();
        st.clock += 1;
        let now = st.clock;
        let slot = st.open.get_mut(&id)?;
        let old = std::mem::replace(&mut slot.tick, now);
        slot.dirty |= write;
        let file = Arc::clone(&slot.file);
        st.lru.remove(&old);
        st.lru.insert(now, id);
        Some(file)
    }

    fn insert(&self, id: u64, file: File, write: bool) -> Arc<File> {
        let mut st = self.state.lock();
        st.clock += 1;
        let now = st.clock;
        if let Some(slot) = st.open.get_mut(&id) {
            // Opened concurrently by another thread: keep theirs (ours closes on drop).
            let old = std::mem::replace(&mut slot.tick, now);
            slot.dirty |= write;
            let file = Arc::clone(&slot.file);
            st.lru.remove(&old);
            st.lru.insert(now, id);
            return file;
        }
        let file = Arc::new(file);
        st.open.insert(
            id,
            Slot {
                file: Arc::clone(&file),
                tick: now,
                dirty: write,
            },
        );
        st.lru.insert(now, id);
        let cap = self.capacity;
        self.evict_to(&mut st, cap);
        file
    }

    fn open_file(&self, path: &Path, create: bool) -> std::io::Result<File> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(create)
                .open(path)
        };
        let f = match open() {
            Err(e) if is_out_of_descriptors(&e) => {
                // Sockets or other files took the descriptors: give back half of ours and
                // retry once, so storage keeps working while the process is under pressure.
                {
                    let mut st = self.state.lock();
                    let keep = st.open.len() / 2;
                    self.evict_to(&mut st, keep);
                }
                open()
            }
            other => other,
        }?;
        self.opens.fetch_add(1, Ordering::Relaxed);
        Ok(f)
    }

    fn forget(&self, id: u64) {
        let mut st = self.state.lock();
        if let Some(slot) = st.open.remove(&id) {
            st.lru.remove(&slot.tick);
        }
    }

    fn set_clean(&self, id: u64) {
        if let Some(slot) = self.state.lock().open.get_mut(&id) {
            slot.dirty = false;
        }
    }
}

/// EMFILE (per process) or ENFILE (system-wide).
fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24) | Some(23))
}

/// A file opened on demand through a [`FilePool`]; see the module docs.
#[derive(Debug)]
pub(crate) struct PooledFile {
    pool: Arc<FilePool>,
    id: u64,
    path: PathBuf,
}

impl PooledFile {
    /// Registers `path` with the pool and opens it (creating or truncating it if `create`),
    /// so a missing file is an error now rather than at the first read.
    pub fn open(pool: &Arc<FilePool>, path: &Path, create: bool) -> Result<PooledFile> {
        let id = pool.next_id.fetch_add(1, Ordering::Relaxed);
        let file = pool
            .open_file(path, create)
            .map_err(|e| LogError::io(path, e))?;
        pool.insert(id, file, false);
        Ok(PooledFile {
            pool: Arc::clone(pool),
            id,
            path: path.to_path_buf(),
        })
    }

    /// The open file, re-opening it if the pool closed it.
    pub fn get(&self) -> Result<Arc<File>> {
        self.get_inner(false)
    }

    /// Like [`Self::get`], for a write: the file stays open until [`Self::mark_clean`].
    pub fn get_for_write(&self) -> Result<Arc<File>> {
        self.get_inner(true)
    }

    fn get_inner(&self, write: bool) -> Result<Arc<File>> {
        if let Some(f) = self.pool.lookup(self.id, write) {
            return Ok(f);
        }
        let file = self
            .pool
            .open_file(&self.path, false)
            .map_err(|e| LogError::io(&self.path, e))?;
        Ok(self.pool.insert(self.id, file, write))
    }

    /// Everything written through this file is fsynced: the pool may close it again.
    pub fn mark_clean(&self) {
        self.pool.set_clean(self.id);
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        self.pool.forget(self.id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn keeps_at_most_capacity_clean_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(3);
        let files: Vec<PooledFile> = (0..10)
            .map(|i| PooledFile::open(&pool, &dir.path().join(format!("{i}")), true).unwrap())
            .collect();
        assert_eq!(pool.stats().open, 3);
        // Every file is still usable: evicted ones are opened again.
        for (i, f) in files.iter().enumerate() {
            f.get().unwrap().write_all_at(&[i as u8], 0).unwrap();
        }
        for (i, f) in files.iter().enumerate() {
            let mut b = [0u8; 1];
            f.get().unwrap().read_exact_at(&mut b, 0).unwrap();
            assert_eq!(b[0], i as u8);
        }
        assert!(pool.stats().open <= 3);
        assert!(pool.stats().evictions >= 7);
        drop(files);
        assert_eq!(pool.stats().open, 0);
    }

    #[test]
    fn files_with_unsynced_writes_are_not_closed() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(2);
        let dirty = PooledFile::open(&pool, &dir.path().join("dirty"), true).unwrap();
        let held = dirty.get_for_write().unwrap();
        drop(held);
        let others: Vec<PooledFile> = (0..5)
            .map(|i| PooledFile::open(&pool, &dir.path().join(format!("o{i}")), true).unwrap())
            .collect();
        let opens = pool.stats().opens;
        // Still open: no re-open needed.
        dirty.get().unwrap();
        assert_eq!(pool.stats().opens, opens);
        dirty.mark_clean();
        for o in &others {
            o.get().unwrap();
        }
        let opens = pool.stats().opens;
        dirty.get().unwrap();
        assert_eq!(
            pool.stats().opens,
            opens + 1,
            "clean file was evicted and re-opened"
        );
    }

    #[test]
    fn a_deleted_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(1);
        let a = PooledFile::open(&pool, &dir.path().join("a"), true).unwrap();
        let _b = PooledFile::open(&pool, &dir.path().join("b"), true).unwrap();
        std::fs::remove_file(dir.path().join("a")).unwrap();
        assert!(matches!(a.get(), Err(LogError::Io { .. })));
    }

    #[test]
    fn reads_the_soft_limit() {
        assert!(soft_fd_limit() >= 1);
        assert!(default_max_open_files() >= 64);
    }
}
