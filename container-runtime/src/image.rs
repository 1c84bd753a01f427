//! Image defaults: entrypoint, cmd, user, workdir and environment of a package image.
//!
//! # Design
//! `hearth s9pk pack` writes, next to each image, `<id>.json` (StartOS's
//! `ImageMetadata`: `workdir`, `user`, `entrypoint`, `cmd`) and `<id>.env`
//! (`KEY=VALUE` lines). When the host puts them in `--images-dir`, a daemon or action
//! runs like the image would: a missing `command` is `entrypoint ++ cmd`, `user` and
//! `workdir` default to the image's, and the spec's `env` is laid over the image's.
//! Without the files, the spec alone decides (and `command` is required).
//!
//! # Invariants
//! The image user `root` (or uid 0) is not applied: it is what we already are, and
//! asking for it would fail when the runtime itself is unprivileged (tests).

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `<image>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageMetadata {
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
}

/// Defaults of one image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageConfig {
    /// `entrypoint ++ cmd` (empty if neither).
    pub(crate) command: Vec<String>,
    /// Working directory.
    pub(crate) workdir: Option<String>,
    /// User, unless it is root.
    pub(crate) user: Option<String>,
    /// Environment in file order.
    pub(crate) env: Vec<(String, String)>,
}

/// Errors reading image files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    /// A file exists but cannot be read.
    #[error("read image file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `<image>.json` is not image metadata.
    #[error("image metadata {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

fn read_optional(path: &Path) -> Result<Option<String>, ImageError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImageError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads `<dir>/<image>.json` and `.env`; `None` if neither exists.
pub(crate) fn load(dir: &Path, image: &str) -> Result<Option<ImageConfig>, ImageError> {
    let json_path = dir.join(format!("{image}.json"));
    let env_path = dir.join(format!("{image}.env"));
    let json = read_optional(&json_path)?;
    let env = read_optional(&env_path)?;
    if json.is_none() && env.is_none() {
        return Ok(None);
    }
    let meta: ImageMetadata = match json {
        Some(text) => serde_json::from_str(&text).map_err(|source| ImageError::Parse {
            path: json_path,
            source,
        })?,
        None => ImageMetadata::default(),
    };
    let mut command = meta.entrypoint.unwrap_or_default();
    command.extend(meta.cmd.unwrap_or_default());
    Ok(Some(ImageConfig {
        command,
        workdir: meta.workdir.filter(|w| !w.is_empty()),
        user: meta
            .user
            .filter(|u| !matches!(u.as_str(), "" | "root" | "0" | "0:0")),
        env: env.as_deref().map(parse_env).unwrap_or_default(),
    }))
}

/// `KEY=VALUE` lines; blank lines, comments and lines without `=` are skipped.
pub(crate) fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `base` with `overrides` laid over it (same key: the override wins, in place).
pub(crate) fn merge_env(
    base: &[(String, String)],
    overrides: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut out = base.to_vec();
    for (k, v) in overrides {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loads_command_user_workdir_and_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.json"),
            r#"{"workdir":"/srv","user":"1000:1000","entrypoint":["/init"],"cmd":["serve","-v"]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("main.env"),
            "PATH=/bin\n# c\n\nA=b=c\nbad\n",
        )
        .unwrap();
        let c = load(dir.path(), "main").unwrap().unwrap();
        assert_eq!(c.command, ["/init", "serve", "-v"]);
        assert_eq!(c.workdir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(
            c.env,
            [("PATH".into(), "/bin".into()), ("A".into(), "b=c".into())]
        );
        assert_eq!(load(dir.path(), "other").unwrap(), None);
    }

    #[test]
    fn root_user_is_not_applied_and_bad_json_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"user":"root","workdir":"/"}"#,
        )
        .unwrap();
        assert_eq!(load(dir.path(), "a").unwrap().unwrap().user, None);
        std::fs::write(dir.path().join("b.json"), "{").unwrap();
        let err = load(dir.path(), "b").unwrap_err().to_string();
        assert!(err.contains("b.json"), "{err}");
    }

    #[test]
    fn spec_env_overrides_image_env_in_place() {
        let base = vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())];
        let merged = merge_env(&base, [("A".into(), "2".into()), ("B".into(), "3".into())]);
        assert_eq!(
            merged,
            [
                ("PATH".into(), "/bin".into()),
                ("A".into(), "2".into()),
                ("B".into(), "3".into())
            ]
        );
    }
}
