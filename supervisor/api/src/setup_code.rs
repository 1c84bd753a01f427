//! The first-boot setup code: proof of physical access (or of the image) that
//! `setup.complete` demands from network callers.
//!
//! # Design
//! * While no owner exists, [`SetupCode::ensure`] reads `<data>/setup-code` (0600) or
//!   creates it with 60 random bits as three groups of four base32 letters
//!   (`ABCD-EFGH-JKLM`), and writes a copy for a person to read to the configured
//!   `setup_code_file` (on the image: a file on the boot FAT partition). The same code
//!   survives restarts, so what is printed on the card stays valid.
//! * A caller holding the local cookie (`x-hearth-local-auth`, a 0600 file in the same
//!   data dir) proves the same access and needs no code.
//! * Codes compare in constant time after normalisation (case, dashes and spaces
//!   ignored). Every attempt is reserved with the login rate limiter first.
//! * Once setup completes both files are deleted; the code is never logged (hearthd
//!   prints it once, on its console, at start).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hearth_rpc::{ErrorCode, RpcError};

use crate::ApiError;
use crate::auth::secret::constant_time_eq;
use crate::auth::{Authenticator, Client};

/// File in the data dir holding the code while setup is pending.
pub(crate) const SETUP_CODE_FILE: &str = "setup-code";

/// RFC 4648 base32 alphabet: no 0/1/8/9, so 0/O and 1/I/L cannot be confused.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Letters in a code (5 bits each: 60 bits).
const LETTERS: usize = 12;

/// The pending setup code and where it is kept.
#[derive(Debug)]
pub(crate) struct SetupCode {
    code: String,
    stored: PathBuf,
    person_file: Option<PathBuf>,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ApiError + 'a {
    move |source| ApiError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn generate() -> Result<String, ApiError> {
    let mut buf = [0u8; LETTERS];
    getrandom::fill(&mut buf).map_err(|e| ApiError::Random(e.to_string()))?;
    let letters: Vec<char> = buf
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    Ok(letters
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

fn well_formed(code: &str) -> bool {
    let n = normalise(code);
    n.len() == LETTERS && n.bytes().all(|b| ALPHABET.contains(&b))
}

impl SetupCode {
    /// Reads the pending code of `data_dir`, or creates one; writes the person-readable
    /// copy to `person_file` if set.
    pub(crate) fn ensure(
        data_dir: &Path,
        person_file: Option<&Path>,
    ) -> Result<SetupCode, ApiError> {
        let stored = data_dir.join(SETUP_CODE_FILE);
        let code = match std::fs::read_to_string(&stored) {
            Ok(s) if well_formed(s.trim()) => s.trim().to_owned(),
            Ok(_) | Err(_) => {
                let code = generate()?;
                let _ = std::fs::remove_file(&stored);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&stored)
                    .map_err(io("create setup code", &stored))?;
                writeln!(f, "{code}")
                    .and_then(|()| f.sync_all())
                    .map_err(io("write setup code", &stored))?;
                code
            }
        };
        if let Some(p) = person_file {
            let text = format!(
                "Hearth setup code: {code}\n\nOpen Hearth in a browser on your network and \
                 enter this code to finish setup.\nThis file is deleted once setup is complete.\n"
            );
            std::fs::write(p, text).map_err(io("write setup code file", p))?;
        }
        Ok(SetupCode {
            code,
            stored,
            person_file: person_file.map(Path::to_path_buf),
        })
    }

    /// The code, for the one print on hearthd's console.
    pub(crate) fn code(&self) -> &str {
        &self.code
    }

    /// Where a person finds the code (for error messages).
    pub(crate) fn whereabouts(&self) -> String {
        match &self.person_file {
            Some(p) => format!(
                "it is printed on the console when hearthd starts and written to {}",
                p.display()
            ),
            None => format!(
                "it is printed on the console when hearthd starts and stored in {}",
                self.stored.display()
            ),
        }
    }

    fn matches(&self, given: &str) -> bool {
        constant_time_eq(
            normalise(given).as_bytes(),
            normalise(&self.code).as_bytes(),
        )
    }

    /// Checks `given` for a network caller at `peer`, rate limited like logins.
    pub(crate) fn check(
        &self,
        auth: &Authenticator,
        peer: Option<std::net::IpAddr>,
        given: Option<&str>,
    ) -> Result<(), RpcError> {
        let attempt = auth
            .limiter
            .reserve(Client::new(peer, None), Instant::now())
            .map_err(|wait| {
                RpcError::new(
                    ErrorCode::RateLimited,
                    format!("too many wrong setup codes; retry after {wait} s"),
                )
                .with("retryAfter", wait)
            })?;
        if given.is_some_and(|g| self.matches(g)) {
            attempt.succeeded();
            return Ok(());
        }
        let backoff = attempt.failed();
        let what = if given.is_some() {
            "wrong setup code"
        } else {
            "setup.complete needs the setup code (param setupCode)"
        };
        let err = RpcError::unauthorized("setupCode", format!("{what}; {}", self.whereabouts()));
        Err(match backoff {
            Some(b) => err.with("retryAfter", b.as_secs()),
            None => err,
        })
    }

    /// Deletes the stored code and the person-readable copy (setup is complete).
    pub(crate) fn remove(&self) {
        for p in std::iter::once(&self.stored).chain(self.person_file.as_ref()) {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "removing the setup code");
            }
        }
    }
}

/// The pending code of a server without owner (created if needed); `None` once setup
/// is complete, after deleting any leftover copy.
pub(crate) fn pending(
    auth: &Authenticator,
    config: &crate::ApiConfig,
) -> Result<Option<std::sync::Arc<SetupCode>>, ApiError> {
    let person = config.setup_code_file.as_deref();
    if auth.setup_complete() {
        SetupCode {
            code: String::new(),
            stored: config.data_dir.join(SETUP_CODE_FILE),
            person_file: person.map(Path::to_path_buf),
        }
        .remove();
        return Ok(None);
    }
    SetupCode::ensure(&config.data_dir, person).map(|c| Some(std::sync::Arc::new(c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn codes_are_three_groups_of_four_base32_letters_and_random() {
        let a = generate().unwrap();
        assert_eq!(a.len(), 14, "{a}");
        assert!(well_formed(&a), "{a}");
        assert_eq!(a.matches('-').count(), 2);
        assert_ne!(a, generate().unwrap());
    }

    #[test]
    fn ensure_creates_a_private_file_keeps_it_across_restarts_and_writes_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let person = dir.path().join("HEARTH-SETUP.txt");
        let c = SetupCode::ensure(dir.path(), Some(&person)).unwrap();
        let stored = dir.path().join(SETUP_CODE_FILE);
        let mode = std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&person).unwrap().contains(c.code()));
        let again = SetupCode::ensure(dir.path(), Some(&person)).unwrap();
        assert_eq!(again.code(), c.code());
        assert!(c.whereabouts().contains("HEARTH-SETUP.txt"));
        c.remove();
        assert!(!stored.exists() && !person.exists());
    }

    #[test]
    fn a_corrupt_stored_code_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETUP_CODE_FILE), "0000").unwrap();
        let c = SetupCode::ensure(dir.path(), None).unwrap();
        assert!(well_formed(c.code()));
    }

    #[test]
    fn matching_ignores_case_dashes_and_spaces_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = SetupCode::ensure(dir.path(), None).unwrap();
        assert!(c.matches(c.code()));
        assert!(c.matches(&c.code().to_lowercase().replace('-', " ")));
        assert!(!c.matches(""));
        assert!(!c.matches(&c.code()[..13]));
        let mut wrong = c.code().to_owned();
        let last = if wrong.ends_with('A') { "B" } else { "A" };
        wrong.replace_range(13.., last);
        assert!(!c.matches(&wrong));
    }
}
