//! The SCRAM credential store: `<data-dir>/users.json`, one salted and iterated credential per
//! user and mechanism (never a password), written atomically (temporary file, fsync, rename)
//! and readable by its owner only.
//!
//! The broker reads it at start and again whenever the file changed, so users added offline
//! with `rivulet users add --data-dir` while the broker runs count from the next login.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::scram::{Mechanism, ScramCredential};
use crate::AuthError;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "users.json";
/// Longest username accepted.
pub const MAX_USERNAME: usize = 255;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct File {
    version: u32,
    users: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>,
}

/// The credential store of one data directory.
#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
    file: File,
    /// Modification time of the file when it was read, to notice changes made by another
    /// process.
    read_at: Option<SystemTime>,
}

/// One user's mechanisms and iteration counts (what listings show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub mechanisms: Vec<(Mechanism, u32)>,
}

/// Refuses usernames Kafka tools could not name: empty, too long, control characters.
pub fn check_username(name: &str) -> Result<(), AuthError> {
    if name.is_empty() || name.len() > MAX_USERNAME {
        return Err(AuthError::Invalid(format!(
            "a username must have 1 to {MAX_USERNAME} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AuthError::Invalid(
            "a username must not contain control characters".into(),
        ));
    }
    Ok(())
}

impl CredentialStore {
    /// The store in `data_dir` (empty if the file does not exist yet).
    pub fn open(data_dir: &Path) -> Result<CredentialStore, AuthError> {
        let mut s = CredentialStore {
            path: data_dir.join(FILE_NAME),
            file: File::default(),
            read_at: None,
        };
        s.reload()?;
        Ok(s)
    }

    fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }

    fn reload(&mut self) -> Result<(), AuthError> {
        let io = |e: std::io::Error| AuthError::Io(format!("{}: {e}", self.path.display()));
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                self.read_at = self.modified();
                self.file = serde_json::from_slice(&bytes).map_err(|e| {
                    AuthError::Invalid(format!(
                        "{}: not a credential file: {e}",
                        self.path.display()
                    ))
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.read_at = None;
                self.file = File::default();
            }
            Err(e) => return Err(io(e)),
        }
        Ok(())
    }

    /// Reads the file again if another process changed it since it was read.
    pub fn refresh(&mut self) -> Result<(), AuthError> {
        if self.modified() != self.read_at {
            self.reload()?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.file.users.is_empty()
    }

    /// The credential of `user` for `mechanism`.
    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<&ScramCredential> {
        self.file.users.get(user)?.get(&mechanism)
    }

    /// Checks a SASL/PLAIN password against any of the user's SCRAM credentials.
    pub fn verify_plain(&self, user: &str, password: &str) -> bool {
        self.file.users.get(user).is_some_and(|creds| {
            creds
                .iter()
                .next()
                .is_some_and(|(m, c)| c.verify_password(*m, password))
        })
    }

    /// Users, sorted, with their mechanisms and iteration counts.
    pub fn list(&self) -> Vec<UserInfo> {
        self.file
            .users
            .iter()
            .map(|(name, creds)| UserInfo {
                name: name.clone(),
                mechanisms: creds.iter().map(|(m, c)| (*m, c.iterations)).collect(),
            })
            .collect()
    }

    /// Adds or replaces `user`'s credential for `mechanism`, and saves.
    pub fn upsert(
        &mut self,
        user: &str,
        mechanism: Mechanism,
        credential: ScramCredential,
    ) -> Result<(), AuthError> {
        check_username(user)?;
        self.file
            .users
            .entry(user.to_string())
            .or_default()
            .insert(mechanism, credential);
        self.save()
    }

    /// Removes `user`'s credential for `mechanism` (every mechanism when `None`), and saves;
    /// `false` if there was nothing to remove.
    pub fn remove(&mut self, user: &str, mechanism: Option<Mechanism>) -> Result<bool, AuthError> {
        let removed = match (self.file.users.get_mut(user), mechanism) {
            (None, _) => false,
            (Some(_), None) => self.file.users.remove(user).is_some(),
            (Some(creds), Some(m)) => {
                let r = creds.remove(&m).is_some();
                if creds.is_empty() {
                    self.file.users.remove(user);
                }
                r
            }
        };
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    fn save(&mut self) -> Result<(), AuthError> {
        let io = |e: std::io::Error| AuthError::Io(format!("{}: {e}", self.path.display()));
        self.file.version = 1;
        let bytes = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| AuthError::Io(format!("cannot encode credentials: {e}")))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        self.read_at = self.modified();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = CredentialStore::open(dir.path()).unwrap();
        assert!(s.is_empty());
        let c = ScramCredential::new(Mechanism::Sha512, "pw1", 8192).unwrap();
        s.upsert("alice", Mechanism::Sha512, c).unwrap();
        let c = ScramCredential::new(Mechanism::Sha256, "pw2", 4096).unwrap();
        s.upsert("bob", Mechanism::Sha256, c).unwrap();
        assert!(s.verify_plain("alice", "pw1") && !s.verify_plain("alice", "pw2"));
        assert!(!s.verify_plain("carol", "pw1"));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            !text.contains("pw1") && text.contains("SCRAM-SHA-512"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }

        // Another process's change is seen on refresh.
        let mut other = CredentialStore::open(dir.path()).unwrap();
        assert_eq!(other.list().len(), 2);
        assert!(other.remove("bob", None).unwrap());
        assert!(!other.remove("bob", None).unwrap());
        // mtime granularity: make sure the change is visible.
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap()
            .set_modified(later)
            .unwrap();
        s.refresh().unwrap();
        assert_eq!(
            s.list(),
            vec![UserInfo {
                name: "alice".into(),
                mechanisms: vec![(Mechanism::Sha512, 8192)]
            }]
        );
        assert!(s
            .upsert(
                "",
                Mechanism::Sha256,
                ScramCredential::new(Mechanism::Sha256, "x", 4096).unwrap()
            )
            .is_err());
        assert!(check_username("a\nb").is_err());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{nope").unwrap();
        let e = CredentialStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a credential file"), "{e}");
    }
}
