//! Login sessions kept between CLI invocations, one per server URL.
//!
//! # Design
//! One JSON file, `$XDG_CONFIG_HOME/hearth/sessions.json` (or `~/.config/hearth/…`),
//! mapping the normalized server URL to the session token from `auth.login`. The token
//! is a secret: the directory is created mode 0700 and the file is always written mode
//! 0600, through a temp file renamed over the old one so a crash never leaves half a
//! file. Sessions past their expiry are ignored on read and dropped on the next write.
//!
//! # Limitations
//! Two CLI processes logging in at the same moment race; the last rename wins and the
//! other login is simply not remembered.
//!
//! # Rejected alternatives
//! The OS keyring: not available on a headless server, and a file readable only by the
//! user is what `ssh` and `gh` do too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// File name inside the config directory.
const FILE_NAME: &str = "sessions.json";

/// Errors of the session store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionStoreError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find the config directory: neither XDG_CONFIG_HOME nor HOME is set")]
    NoConfigDir,
    /// The file exists but could not be read.
    #[error("reading sessions from {path}: {source}")]
    Read {
        /// The sessions file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The file is not a sessions file.
    #[error("reading sessions from {path} (fix or delete it): {source}")]
    Parse {
        /// The sessions file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
    /// The file could not be written.
    #[error("writing sessions to {path}: {source}")]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

/// One remembered login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSession {
    /// The secret session token (value of the `session` cookie).
    pub(crate) token: String,
    /// The session id the server reported (a hash of the token), for `auth.session.list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session_id: Option<String>,
    /// Expiry reported by the server, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at_ms: Option<u64>,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("token", &"<redacted>")
            .field("session_id", &self.session_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl StoredSession {
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// On-disk shape.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionFile {
    /// Sessions by normalized server URL.
    #[serde(default)]
    sessions: BTreeMap<String, StoredSession>,
}

/// The sessions file.
#[derive(Debug, Clone)]
pub(crate) struct SessionStore {
    path: PathBuf,
}

impl SessionStore {
    /// The store in the user's config directory.
    pub(crate) fn in_config_dir() -> Result<SessionStore, SessionStoreError> {
        let dir = config_dir(
            std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
        .ok_or(SessionStoreError::NoConfigDir)?;
        Ok(SessionStore::at(dir.join("hearth").join(FILE_NAME)))
    }

    /// The store in the file at `path`.
    pub(crate) fn at(path: PathBuf) -> SessionStore {
        SessionStore { path }
    }

    /// Where the sessions are kept.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The unexpired session for `url`, if any.
    pub(crate) fn get(&self, url: &str) -> Result<Option<StoredSession>, SessionStoreError> {
        let now = now_ms();
        Ok(self
            .load()?
            .sessions
            .remove(url)
            .filter(|s| !s.expired(now)))
    }

    /// Remembers `session` for `url`, replacing any previous one.
    pub(crate) fn put(&self, url: &str, session: StoredSession) -> Result<(), SessionStoreError> {
        let mut file = self.load()?;
        file.sessions.insert(url.to_owned(), session);
        self.save(file)
    }

    /// Forgets the session for `url`; returns whether there was one.
    pub(crate) fn remove(&self, url: &str) -> Result<bool, SessionStoreError> {
        let mut file = self.load()?;
        let existed = file.sessions.remove(url).is_some();
        if existed {
            self.save(file)?;
        }
        Ok(existed)
    }

    fn load(&self) -> Result<SessionFile, SessionStoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SessionFile::default()),
            Err(source) => {
                return Err(SessionStoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| SessionStoreError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    fn save(&self, mut file: SessionFile) -> Result<(), SessionStoreError> {
        let now = now_ms();
        file.sessions.retain(|_, s| !s.expired(now));
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| SessionStoreError::Write { path, source }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err(dir))?;
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let result = (|| {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // `mode` only applies to new files; a stale temp file keeps its old mode.
            out.set_permissions(fs::Permissions::from_mode(0o600))?;
            let mut bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
            bytes.push(b'\n');
            out.write_all(&bytes)?;
            out.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_err(&self.path))
    }
}

/// `$XDG_CONFIG_HOME` if set and absolute (as the XDG spec requires), else `$HOME/.config`.
fn config_dir(xdg_config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    xdg_config_home.filter(|p| p.is_absolute()).or_else(|| {
        home.filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(".config"))
    })
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(token: &str, expires_at_ms: Option<u64>) -> StoredSession {
        StoredSession {
            token: token.into(),
            session_id: Some(format!("id-{token}")),
            expires_at_ms,
        }
    }

    #[test]
    fn sessions_are_kept_per_url_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::at(dir.path().join("cfg/hearth/sessions.json"));
        assert_eq!(store.get("http://a:1").unwrap(), None);
        store.put("http://a:1", session("ta", None)).unwrap();
        store.put("http://b:2", session("tb", None)).unwrap();

        let reopened = SessionStore::at(store.path().to_owned());
        assert_eq!(
            reopened.get("http://a:1").unwrap(),
            Some(session("ta", None))
        );
        assert_eq!(
            reopened.get("http://b:2").unwrap(),
            Some(session("tb", None))
        );

        assert!(reopened.remove("http://a:1").unwrap());
        assert!(!reopened.remove("http://a:1").unwrap());
        assert_eq!(reopened.get("http://a:1").unwrap(), None);
        assert_eq!(
            reopened.get("http://b:2").unwrap(),
            Some(session("tb", None))
        );
    }

    #[test]
    fn file_and_directory_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth/sessions.json");
        // A pre-existing file with loose permissions is tightened on write.
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let store = SessionStore::at(path.clone());
        store.put("http://a", session("secret", None)).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let fresh = dir.path().join("new/hearth/sessions.json");
        SessionStore::at(fresh.clone())
            .put("http://a", session("secret", None))
            .unwrap();
        let dir_mode = fs::metadata(fresh.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(
            fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn expired_sessions_are_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::at(dir.path().join("s.json"));
        store.put("http://old", session("t", Some(1))).unwrap();
        assert_eq!(store.get("http://old").unwrap(), None);
        let later = now_ms() + 60_000;
        store.put("http://new", session("t", Some(later))).unwrap();
        assert!(store.get("http://new").unwrap().is_some());
        // The expired entry was dropped from the file by the second write.
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("http://old"), "{text}");
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "not json").unwrap();
        let err = SessionStore::at(path.clone()).get("http://a").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn config_dir_follows_xdg_then_home() {
        assert_eq!(
            config_dir(Some("/x/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/cfg"))
        );
        // A relative XDG_CONFIG_HOME is invalid per the spec and ignored.
        assert_eq!(
            config_dir(Some("rel".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.config"))
        );
        assert_eq!(config_dir(None, None), None);
    }
}
