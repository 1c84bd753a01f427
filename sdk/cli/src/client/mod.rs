//! The `hearth` admin client: talks JSON-RPC 2.0 to `hearthd` at `--url`.
//!
//! # Purpose
//! * `hearth rpc METHOD [JSON]` calls any method and prints the result as JSON.
//! * `hearth NOUN VERB [--flags] [JSON]` is generated from `hearth_rpc`'s catalogue
//!   ([`commands`]), with human output ([`format`]) unless `--json` is given.
//! * `hearth package install FILE` streams a package to `hearthd` ([`install`]).
//! * `hearth auth login` / `logout` keep a session per server URL ([`session_store`]);
//!   a new login ends the session it replaces.
//! * Passwords are never required as flags: `auth login` prompts (or reads
//!   `--password-stdin`), and a required `*password` param of a generated command is
//!   prompted for without echo when its flag is not given.
//!
//! # Credentials
//! Each call sends one credential, tried in this order:
//! 1. `--token` / `HEARTH_TOKEN`: an API token (`Authorization: Bearer`), exclusively;
//! 2. the saved session for the URL (`session` cookie);
//! 3. the local auth secret of a `hearthd` on this machine (file
//!    [`hearth_layout::LOCAL_COOKIE_FILE`] in `--data-dir`), sent only to loopback URLs
//!    so it can never leak to another host; this is how root on the box needs no
//!    password;
//! 4. nothing (enough for public methods).
//!
//! If the server refuses a saved session as expired or unknown, the session is
//! forgotten and the next credential is tried. Public methods are always called without
//! a credential. No `Origin` header is sent: `hearthd` checks `Origin` only when a
//! request carries one (browsers always do, so cross-site requests are still caught).
//!
//! # Limitations
//! HTTPS trusts the Mozilla root store (webpki-roots) or, with `--ca-cert`, exactly the
//! given CAs; there is no trust-on-first-use of a server certificate yet.
//!
//! # Rejected alternatives
//! Sending the local secret to any URL: a mistyped `--url` would hand root on this
//! machine to whoever runs that server.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod commands;
mod format;
mod http;
mod install;
mod params;
mod session_store;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use hearth_rpc::methods::auth::{LoginParams, LoginResult};
use hearth_rpc::{Auth, ErrorCode};
use serde_json::{Map, Value};

pub(crate) use commands::MethodCommand;
use http::{CallError, Credential, RpcClient};
use params::ParamsError;
use session_store::{SessionStore, SessionStoreError, StoredSession};

/// Options shared by every client command.
///
/// `--url` and `--data-dir` have no clap default (a global arg with a default would
/// show up as required in every subcommand's usage line); the defaults are applied in
/// [`ClientOptions::url`] and [`ClientOptions::data_dir`].
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ClientOptions {
    #[arg(long, global = true, env = "HEARTH_URL", help = format!(
        "Base URL of hearthd [default: {}]", default_url()
    ))]
    url: Option<String>,
    /// Print results as JSON instead of the human form.
    #[arg(long, global = true)]
    json: bool,
    #[arg(long, global = true, env = "HEARTH_DATA_DIR", help = format!(
        "Data directory of a hearthd on this machine, whose local auth cookie lets \
         its admin in without a password [default: {}]",
        hearth_layout::DEVICE_DATA_DIR
    ))]
    data_dir: Option<PathBuf>,
    /// API token (from `hearth auth token create`); prefer the environment variable, a
    /// flag is visible to other users in the process list.
    #[arg(long, global = true, env = "HEARTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of the CA(s) to trust for an https:// URL instead of the public roots
    /// (for a server with a certificate from its own CA).
    #[arg(long, global = true, env = "HEARTH_CA_CERT", value_name = "PEM_FILE")]
    ca_cert: Option<PathBuf>,
}

impl ClientOptions {
    /// `--json`: machine-readable output (the `s9pk` verbs read it too).
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    fn url(&self) -> String {
        self.url.clone().unwrap_or_else(default_url)
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(hearth_layout::DEVICE_DATA_DIR))
    }
}

fn default_url() -> String {
    format!("http://{}", hearth_layout::DEV_LISTEN)
}

/// Arguments of `hearth rpc`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = rpc_methods_help())]
pub(crate) struct RpcArgs {
    /// Method name, e.g. `server.echo` (`rpc.discover` lists them all).
    method: String,
    /// Params as a JSON object (`-` reads it from stdin); default `{}`.
    params: Option<String>,
}

/// The method list shown by `hearth rpc --help`: this CLI's catalogue (the server's own
/// list, which may be newer, comes from `hearth rpc rpc.discover`).
fn rpc_methods_help() -> String {
    let methods = hearth_rpc::catalogue();
    let width = methods.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out =
        String::from("Methods known to this hearth (the server's own list: rpc.discover):\n");
    for m in &methods {
        let summary = commands::summary(m.description);
        let login = if m.auth == Auth::Public {
            ""
        } else {
            " [login]"
        };
        out.push_str(&format!(
            "  {:width$}  {}{login}\n",
            m.name,
            summary.trim_end_matches('.')
        ));
    }
    out
}

/// Errors of the client commands.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The call failed for lack of authentication; the hint says how to fix it.
    #[error("{error}; {hint}")]
    Unauthorized {
        /// The refused call.
        error: CallError,
        /// What to do.
        hint: String,
    },
    /// The session file could not be used.
    #[error(transparent)]
    Sessions(#[from] SessionStoreError),
    /// The params given are not usable.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The password could not be read.
    #[error("reading the password: {0}")]
    ReadPassword(#[source] io::Error),
    /// The password read is empty.
    #[error("no password given")]
    EmptyPassword,
    /// The two prompted entries differ.
    #[error("the two passwords differ; nothing was changed")]
    PasswordMismatch,
    /// Login succeeded but there is no session to keep.
    #[error("logged in to {url}, but the response set no `session` cookie to keep")]
    NoSessionCookie {
        /// The server.
        url: String,
    },
    /// `hearth package install` failed before or after its call.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// Printing the result failed.
    #[error("writing to stdout: {0}")]
    Stdout(#[source] io::Error),
}

/// Runs `hearth rpc METHOD [JSON]`.
pub(crate) fn run_rpc(opts: &ClientOptions, args: RpcArgs) -> Result<(), ClientError> {
    let params = match &args.params {
        Some(text) => params::parse_json_object(text)?,
        None => Map::new(),
    };
    let auth = hearth_rpc::method_info(&args.method).map_or(Auth::Authenticated, |m| m.auth);
    let mut conn = Connection::open(opts)?;
    let result = conn.call(&args.method, Value::Object(params), auth)?;
    print_json(&result)
}

/// Runs a generated command (including `auth login` / `auth logout`).
pub(crate) fn run_method(opts: &ClientOptions, command: MethodCommand) -> Result<(), ClientError> {
    let mut conn = Connection::open(opts)?;
    match command {
        MethodCommand::Call {
            method,
            mut params,
            mut prompt,
        } => {
            // The current password first, as people expect (schema order is alphabetic).
            prompt.sort_by_key(|(name, _)| confirm_secret(name));
            for (name, flag) in prompt {
                let secret = prompt_secret(method, &flag, confirm_secret(&name))?;
                params.insert(name, Value::String(secret));
            }
            let auth = hearth_rpc::method_info(method).map_or(Auth::Authenticated, |m| m.auth);
            let result = conn.call(method, Value::Object(params), auth)?;
            if opts.json {
                print_json(&result)
            } else {
                print(&format::human(&result))
            }
        }
        MethodCommand::Login { password_stdin } => login(&mut conn, password_stdin, opts.json),
        MethodCommand::Logout => logout(&mut conn),
        MethodCommand::Install {
            source,
            allow_untrusted,
        } => install::run(&mut conn, source, allow_untrusted, opts.json),
    }
}

/// A server URL with the means to authenticate to it.
struct Connection {
    url: String,
    client: RpcClient,
    /// `None` if there is no config directory (then nothing can be saved).
    sessions: Option<SessionStore>,
    local_cookie: PathBuf,
    token: Option<String>,
}

impl Connection {
    fn open(opts: &ClientOptions) -> Result<Connection, ClientError> {
        let url = http::normalize_url(&opts.url())?;
        Ok(Connection {
            client: RpcClient::new(&url, opts.ca_cert.as_deref())?,
            url,
            sessions: SessionStore::in_config_dir().ok(),
            local_cookie: opts.data_dir().join(hearth_layout::LOCAL_COOKIE_FILE),
            token: opts.token.clone().filter(|t| !t.is_empty()),
        })
    }

    fn sessions(&self) -> Result<&SessionStore, ClientError> {
        self.sessions
            .as_ref()
            .ok_or(ClientError::Sessions(SessionStoreError::NoConfigDir))
    }

    /// The local auth secret, if this URL is on this machine and the file is readable.
    fn local_secret(&self) -> Option<String> {
        if !http::is_loopback_url(&self.url) {
            return None;
        }
        let text = std::fs::read_to_string(&self.local_cookie).ok()?;
        let secret = text.trim();
        (!secret.is_empty()).then(|| secret.to_owned())
    }

    /// Credentials to try, best first (see the module docs).
    fn credentials(&self) -> Result<Vec<Credential>, ClientError> {
        if let Some(token) = &self.token {
            return Ok(vec![Credential::Token(token.clone())]);
        }
        let mut out = Vec::new();
        if let Some(store) = &self.sessions
            && let Some(s) = store.get(&self.url)?
        {
            out.push(Credential::Session(s.token));
        }
        if let Some(secret) = self.local_secret() {
            out.push(Credential::Local(secret));
        }
        Ok(out)
    }

    /// Calls `method`, trying credentials in order while a saved session is refused.
    fn call(&mut self, method: &str, params: Value, auth: Auth) -> Result<Value, ClientError> {
        self.call_with_credential(method, params, auth)
            .map(|(result, _)| result)
    }

    /// The credential the server accepts, found by calling `probe` (an authenticated
    /// method without params or effects) as [`Connection::call`] does.
    fn working_credential(&mut self, probe: &str) -> Result<Credential, ClientError> {
        self.call_with_credential(probe, Value::Object(Map::new()), Auth::Authenticated)
            .map(|(_, credential)| credential)
    }

    /// [`Connection::call`], also returning the credential that worked.
    fn call_with_credential(
        &mut self,
        method: &str,
        params: Value,
        auth: Auth,
    ) -> Result<(Value, Credential), ClientError> {
        let credentials = match auth {
            Auth::Public => Vec::new(),
            Auth::Authenticated => self.credentials()?,
        };
        let mut forgot_session = false;
        for credential in credentials {
            match self.client.call(method, &params, &credential) {
                Ok(reply) => return Ok((reply.result, credential)),
                Err(e) if matches!(credential, Credential::Session(_)) && stale_session(&e) => {
                    if let Some(store) = &self.sessions {
                        store.remove(&self.url)?;
                    }
                    forgot_session = true;
                }
                Err(e) => return Err(self.explain(e, forgot_session)),
            }
        }
        // No credential, or only a refused session: public methods still work.
        self.client
            .call(method, &params, &Credential::None)
            .map(|reply| (reply.result, Credential::None))
            .map_err(|e| self.explain(e, forgot_session))
    }

    /// Adds a hint to an authentication failure.
    fn explain(&self, error: CallError, forgot_session: bool) -> ClientError {
        let unauthorized = error
            .rpc_error()
            .is_some_and(|e| e.error_code() == Some(ErrorCode::Unauthorized));
        if !unauthorized {
            return ClientError::Call(error);
        }
        let mut hint = format!("log in with `hearth --url {} auth login`", self.url);
        if forgot_session {
            hint.push_str(" (the saved session was no longer valid and has been forgotten)");
        } else if self.token.is_some() {
            hint = "check the API token in --token / HEARTH_TOKEN".to_owned();
        } else if http::is_loopback_url(&self.url)
            && self.local_cookie.exists()
            && self.local_secret().is_none()
        {
            hint.push_str(&format!(
                ", or run as a user who can read {}",
                self.local_cookie.display()
            ));
        }
        ClientError::Unauthorized { error, hint }
    }
}

/// Whether the server refused a session because it expired or is unknown.
fn stale_session(error: &CallError) -> bool {
    error.rpc_error().is_some_and(|e| {
        e.error_code() == Some(ErrorCode::Unauthorized)
            && matches!(
                e.data_field("reason").and_then(Value::as_str),
                Some("expired" | "invalidToken")
            )
    })
}

fn login(conn: &mut Connection, password_stdin: bool, json: bool) -> Result<(), ClientError> {
    let password = if password_stdin {
        read_password_line(io::stdin().lock())?
    } else {
        rpassword::prompt_password(format!("Password for {}: ", conn.url))
            .map_err(ClientError::ReadPassword)?
    };
    if password.is_empty() {
        return Err(ClientError::EmptyPassword);
    }
    let params = serde_json::to_value(LoginParams { password })
        .map_err(|e| ClientError::Params(ParamsError::Parse(e)))?;
    let reply = conn
        .client
        .call(LOGIN_METHOD, &params, &Credential::None)
        .map_err(ClientError::Call)?;
    let token = reply
        .session_cookie
        .ok_or_else(|| ClientError::NoSessionCookie {
            url: conn.url.clone(),
        })?;
    let info: Option<LoginResult> = serde_json::from_value(reply.result.clone()).ok();
    let store = conn.sessions()?.clone();
    let previous = store.get(&conn.url).ok().flatten();
    store.put(
        &conn.url,
        StoredSession {
            token,
            session_id: info.as_ref().map(|i| i.session_id.clone()),
            expires_at_ms: info.as_ref().map(|i| i.expires_at_ms),
        },
    )?;
    // Best effort: end the session this login replaces instead of leaving it live.
    if let Some(old) = previous {
        let _ = conn.client.call(
            LOGOUT_METHOD,
            &Value::Object(Map::new()),
            &Credential::Session(old.token),
        );
    }
    if json {
        print_json(&reply.result)
    } else {
        print(&format!(
            "Logged in to {}; session saved in {}\n",
            conn.url,
            store.path().display()
        ))
    }
}

/// Name of the login method.
const LOGIN_METHOD: &str = "auth.login";
/// Name of the logout method.
const LOGOUT_METHOD: &str = "auth.logout";

fn logout(conn: &mut Connection) -> Result<(), ClientError> {
    let store = conn.sessions()?.clone();
    let Some(session) = store.get(&conn.url)? else {
        return print(&format!("Not logged in to {}\n", conn.url));
    };
    let outcome = conn.client.call(
        LOGOUT_METHOD,
        &Value::Object(Map::new()),
        &Credential::Session(session.token),
    );
    match outcome {
        Ok(_) => {
            store.remove(&conn.url)?;
            print(&format!("Logged out of {}\n", conn.url))
        }
        Err(e) if stale_session(&e) => {
            store.remove(&conn.url)?;
            print(&format!(
                "Logged out of {} (the server had already ended the session)\n",
                conn.url
            ))
        }
        // Keep the session: the server still honours it, so the user can retry.
        Err(e) => Err(ClientError::Call(e)),
    }
}

/// Whether a prompted password is typed twice: new passwords are, a current one
/// (`oldPassword`) is checked by the server anyway.
fn confirm_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(lower.starts_with("old") || lower.starts_with("current"))
}

/// Prompts on the terminal, without echo, for the value of `--flag` of `method`.
fn prompt_secret(method: &str, flag: &str, confirm: bool) -> Result<String, ClientError> {
    let first = rpassword::prompt_password(format!("{flag} for {method}: "))
        .map_err(ClientError::ReadPassword)?;
    if first.is_empty() {
        return Err(ClientError::EmptyPassword);
    }
    if confirm {
        let again = rpassword::prompt_password(format!("{flag} again: "))
            .map_err(ClientError::ReadPassword)?;
        if again != first {
            return Err(ClientError::PasswordMismatch);
        }
    }
    Ok(first)
}

/// One line of `reader` without its line ending (`docker login --password-stdin` style).
fn read_password_line(mut reader: impl BufRead) -> Result<String, ClientError> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(ClientError::ReadPassword)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_owned())
}

fn print_json(value: &Value) -> Result<(), ClientError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| ClientError::Stdout(e.into()))?;
    text.push('\n');
    print(&text)
}

/// Writes to stdout; a closed pipe (`hearth … | head`) is not an error.
fn print(text: &str) -> Result<(), ClientError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(ClientError::Stdout(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_rpc::RpcError;

    #[test]
    fn password_line_drops_only_the_line_ending() {
        let p = read_password_line(&b"  secret pw \r\nnext"[..]).unwrap();
        assert_eq!(p, "  secret pw ");
        assert_eq!(read_password_line(&b"x"[..]).unwrap(), "x");
        assert_eq!(read_password_line(&b""[..]).unwrap(), "");
    }

    #[test]
    fn only_expired_or_unknown_sessions_are_stale() {
        let refused = |reason: &str| CallError::Rpc {
            method: "server.info".into(),
            error: RpcError::unauthorized(reason, "no"),
        };
        assert!(stale_session(&refused("expired")));
        assert!(stale_session(&refused("invalidToken")));
        // A foreign Origin says nothing about the session itself.
        assert!(!stale_session(&refused("foreignOrigin")));
        let other = CallError::Rpc {
            method: "x".into(),
            error: RpcError::new(ErrorCode::IncorrectPassword, "wrong"),
        };
        assert!(!stale_session(&other));
    }

    #[test]
    fn whole_cli_with_generated_commands_is_consistent() {
        use clap::CommandFactory;
        // Catches a catalogue noun colliding with a hand-written command.
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn rpc_help_lists_every_method_and_which_need_login() {
        let help = rpc_methods_help();
        for m in hearth_rpc::catalogue() {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", m.name)))
                .unwrap_or_else(|| panic!("{} missing from:\n{help}", m.name));
            assert_eq!(
                line.ends_with(" [login]"),
                m.auth == Auth::Authenticated,
                "{line}"
            );
        }
    }

    #[test]
    fn only_new_passwords_are_confirmed() {
        assert!(confirm_secret("password"));
        assert!(confirm_secret("newPassword"));
        assert!(!confirm_secret("oldPassword"));
        assert!(!confirm_secret("currentPassword"));
    }

    #[test]
    fn default_url_points_at_the_dev_listener() {
        assert_eq!(default_url(), "http://127.0.0.1:8080");
        assert!(http::normalize_url(&default_url()).is_ok());
    }
}
