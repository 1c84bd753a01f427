//! The friendly subcommands, generated from `hearth_rpc`'s method catalogue.
//!
//! # Mapping
//! A method `noun.verb` becomes `hearth noun verb`; deeper names nest
//! (`auth.session.list` → `hearth auth session list`). Params become flags as described
//! in [`super::params`]. The method's description is the command's help; its first
//! sentence is the one-line summary. Two methods are replaced by client-side commands
//! because they manage the CLI's own state: `auth.login` (prompts for the password and
//! saves the session) and `auth.logout` (also forgets the saved session).
//! `package.install` is replaced by `hearth package install SOURCE` ([`super::install`]),
//! which uploads a local file (something a params object cannot carry) or passes a
//! server path or URL on to the method.
//!
//! The `rpc` noun (`rpc.discover`) is not generated: `hearth rpc METHOD` is the generic
//! caller and `hearth rpc rpc.discover` reaches it.
//!
//! # Design
//! [`MethodCommand`] implements clap's `Subcommand` and `FromArgMatches` by hand, so
//! `main.rs` flattens it into its derived command enum with one line and `hearth --help`
//! lists the generated groups beside the hand-written commands.
//!
//! # Rejected alternatives
//! * `external_subcommand` with a second parse: `hearth --help` would not list the groups
//!   and errors would show the wrong usage line.
//! * A hand-written enum of methods: it would drift from the catalogue.

use std::sync::OnceLock;

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches, Subcommand};
use hearth_rpc::MethodInfo;
use serde_json::{Map, Value};

use super::params::{self, ParamSpec};

/// Top-level names never generated (they belong to hand-written commands).
const RESERVED_NOUNS: &[&str] = &["rpc", "help"];
/// `auth.login`, replaced by a client-side command.
const LOGIN: &str = "auth.login";
/// `auth.logout`, replaced by a client-side command.
const LOGOUT: &str = "auth.logout";
/// `package.install`, replaced by a command that can also upload a file.
const INSTALL: &str = "package.install";

/// One parsed generated command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MethodCommand {
    /// Call `method` with `params`.
    Call {
        /// The method.
        method: &'static str,
        /// Its params object.
        params: Map<String, Value>,
        /// Required passwords not given: `(wire name, flag)`, to prompt for.
        prompt: Vec<(String, String)>,
    },
    /// `hearth auth login`.
    Login {
        /// Read the password from stdin instead of prompting.
        password_stdin: bool,
    },
    /// `hearth auth logout`.
    Logout,
    /// `hearth package install`.
    Install {
        /// What to install.
        source: InstallSource,
        /// Install even if the signer is not trusted.
        allow_untrusted: bool,
    },
}

/// Where `hearth package install` takes the package from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InstallSource {
    /// A file on this machine, uploaded to `hearthd`.
    Upload(std::path::PathBuf),
    /// A file on the server (`package.install {path}`).
    ServerPath(String),
    /// An `http(s)://` URL the server downloads (`package.install {url}`).
    Url(String),
}

/// Whether the catalogue's `package.install` takes a `url` param (the server
/// downloads the package).
pub(crate) fn install_takes_url() -> bool {
    methods()
        .iter()
        .find(|m| m.name == INSTALL)
        .and_then(|m| m.params_schema.pointer("/properties/url"))
        .is_some()
}

/// The catalogue, computed once (schema generation is not free).
fn methods() -> &'static [MethodInfo] {
    static METHODS: OnceLock<Vec<MethodInfo>> = OnceLock::new();
    METHODS.get_or_init(|| {
        hearth_rpc::catalogue()
            .into_iter()
            .filter(|m| !RESERVED_NOUNS.contains(&noun(m.name)))
            .collect()
    })
}

fn noun(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// First sentence of a description, for the one-line summary in listings.
pub(crate) fn summary(description: &str) -> String {
    let flat = description.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut from = 0;
    while let Some(at) = flat[from..].find(". ") {
        let end = from + at;
        // "e.g. x" and "i.e. x" do not end a sentence.
        if !(flat[..end].ends_with("e.g") || flat[..end].ends_with("i.e")) {
            return flat[..=end].to_owned();
        }
        from = end + 2;
    }
    flat
}

/// The command for the node at `path` (dot segments) and everything under it.
fn build(path: &[&str]) -> Command {
    let name = path.join(".");
    let seg = path.last().copied().unwrap_or_default().to_owned();
    let method = methods().iter().find(|m| m.name == name);
    let children: Vec<&str> = {
        let mut seen = Vec::new();
        for m in methods() {
            let parts: Vec<&str> = m.name.split('.').collect();
            if parts.len() > path.len() && parts[..path.len()] == *path {
                let child = parts[path.len()];
                if !seen.contains(&child) {
                    seen.push(child);
                }
            }
        }
        seen
    };
    let mut cmd = Command::new(seg);
    cmd = match method {
        Some(m) if m.name == LOGIN => login_command(),
        Some(m) if m.name == LOGOUT => cmd.about("Log out and forget the saved session"),
        Some(m) if m.name == INSTALL => install_command(m),
        Some(m) => params::add_args(
            cmd.about(summary(m.description)).long_about(
                m.description
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            &params::param_specs(&m.params_schema),
        ),
        None => {
            let prefix = format!("{name}.");
            let verbs: Vec<&str> = methods()
                .iter()
                .filter_map(|m| m.name.strip_prefix(&prefix))
                .collect();
            cmd.about(format!("{name}.* methods: {}", verbs.join(", ")))
                .subcommand_required(true)
                .arg_required_else_help(true)
        }
    };
    if method.is_some() && !children.is_empty() {
        cmd = cmd.args_conflicts_with_subcommands(true);
    }
    for child in children {
        let mut child_path = path.to_vec();
        child_path.push(child);
        cmd = cmd.subcommand(build(&child_path));
    }
    cmd
}

fn login_command() -> Command {
    Command::new("login")
        .about("Log in with the master password and save the session for this URL")
        .long_about(
            "Log in with the master password and save the session for this URL in \
             $XDG_CONFIG_HOME/hearth/sessions.json (mode 0600). Later commands use it. \
             The password is prompted for without echo unless --password-stdin is given.",
        )
        .arg(
            Arg::new("password-stdin")
                .long("password-stdin")
                .action(ArgAction::SetTrue)
                .help("Read the password from stdin (one line) instead of prompting"),
        )
}

/// Arg ids of `hearth package install`.
const SOURCE_ARG: &str = "source";
const PATH_ARG: &str = "path";
const ALLOW_UNTRUSTED_ARG: &str = "allow-untrusted";

fn install_command(method: &MethodInfo) -> Command {
    let url_help = if install_takes_url() {
        " or an http(s):// URL that hearthd downloads"
    } else {
        ""
    };
    Command::new("install")
        .about("Install a package: upload a .s9pk file, or name one on the server")
        .long_about(format!(
            "Install a package. SOURCE is a .s9pk file on this machine, streamed to \
             hearthd{url_help}; --path names a file already in the server's import \
             directory (`<data>/import`, or a directory hearthd was given with \
             --import-dir; absolute, or relative to `<data>/import`). The \
             signature and every hash are checked before anything is unpacked, and the \
             signer must be trusted (`hearth package trust add`) unless \
             --allow-untrusted is given. (Method: {}.) {}",
            method.name,
            method
                .description
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .arg(
            Arg::new(SOURCE_ARG)
                .value_name("SOURCE")
                .help(format!("A .s9pk file to upload{url_help}")),
        )
        .arg(
            Arg::new(PATH_ARG)
                .long("path")
                .value_name("SERVER_PATH")
                .help(
                    "A .s9pk file in the server's import directory (<data>/import) \
                     instead of SOURCE",
                ),
        )
        .arg(
            Arg::new(ALLOW_UNTRUSTED_ARG)
                .long("allow-untrusted")
                .action(ArgAction::SetTrue)
                .help(
                    "Install even if the signer is not a trusted key (its fingerprint is \
                     recorded)",
                ),
        )
        .group(
            clap::ArgGroup::new("install-source")
                .args([SOURCE_ARG, PATH_ARG])
                .required(true),
        )
}

fn install_from_matches(m: &ArgMatches) -> Result<MethodCommand, clap::Error> {
    let allow_untrusted = m.get_flag(ALLOW_UNTRUSTED_ARG);
    let source = if let Some(path) = m.get_one::<String>(PATH_ARG) {
        InstallSource::ServerPath(path.clone())
    } else {
        let Some(text) = m.get_one::<String>(SOURCE_ARG) else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "give a .s9pk file or --path\n",
            ));
        };
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            if !install_takes_url() {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!(
                        "{text}: this hearth cannot install from a URL yet; download the \
                         file and install it (a local file named like a URL: ./{text})\n"
                    ),
                ));
            }
            InstallSource::Url(text.clone())
        } else {
            InstallSource::Upload(text.into())
        }
    };
    Ok(MethodCommand::Install {
        source,
        allow_untrusted,
    })
}

/// The top-level nouns, in catalogue order.
fn nouns() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for m in methods() {
        let n = noun(m.name);
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

impl FromArgMatches for MethodCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut path: Vec<&str> = Vec::new();
        let mut current = matches;
        while let Some((name, sub)) = current.subcommand() {
            path.push(name);
            current = sub;
        }
        let name = path.join(".");
        let Some(method) = methods().iter().find(|m| m.name == name) else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidSubcommand,
                format!("no method {name:?} in the catalogue\n"),
            ));
        };
        match method.name {
            LOGIN => Ok(MethodCommand::Login {
                password_stdin: current.get_flag("password-stdin"),
            }),
            LOGOUT => Ok(MethodCommand::Logout),
            INSTALL => install_from_matches(current),
            _ => {
                let specs: Vec<ParamSpec> = params::param_specs(&method.params_schema);
                let params = params::collect(current, &specs).map_err(|e| {
                    clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n"))
                })?;
                Ok(MethodCommand::Call {
                    method: method.name,
                    prompt: params::missing_secrets(&specs, &params),
                    params,
                })
            }
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = MethodCommand::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for MethodCommand {
    fn augment_subcommands(mut cmd: Command) -> Command {
        for n in nouns() {
            cmd = cmd.subcommand(build(&[n]));
        }
        cmd
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        MethodCommand::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        nouns().contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args: &[&str]) -> Result<MethodCommand, String> {
        let cmd = MethodCommand::augment_subcommands(Command::new("hearth"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("hearth").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        MethodCommand::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    #[test]
    fn methods_map_to_nested_subcommands() {
        assert_eq!(
            parse(&["server", "info"]).unwrap(),
            MethodCommand::Call {
                method: "server.info",
                params: Map::new(),
                prompt: Vec::new(),
            }
        );
        assert_eq!(
            parse(&["auth", "session", "list"]).unwrap(),
            MethodCommand::Call {
                method: "auth.session.list",
                params: Map::new(),
                prompt: Vec::new(),
            }
        );
    }

    #[test]
    fn params_come_from_flags_or_a_json_object() {
        let MethodCommand::Call { params, .. } =
            parse(&["server", "echo", "--message", "hi"]).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(Value::Object(params), json!({"message": "hi"}));
        let MethodCommand::Call { params, .. } =
            parse(&["notification", "remove", r#"{"ids": [3]}"#]).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(Value::Object(params), json!({"ids": [3]}));
    }

    #[test]
    fn setup_password_is_prompted_for_when_not_given() {
        let MethodCommand::Call { params, prompt, .. } =
            parse(&["setup", "complete", "--hostname", "box"]).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(Value::Object(params), json!({"hostname": "box"}));
        assert_eq!(prompt, vec![("password".to_owned(), "password".to_owned())]);
    }

    #[test]
    fn missing_required_flag_is_a_usage_error() {
        let e = parse(&["server", "echo"]).unwrap_err();
        assert!(e.contains("--message"), "{e}");
    }

    #[test]
    fn login_and_logout_are_client_commands() {
        assert_eq!(
            parse(&["auth", "login", "--password-stdin"]).unwrap(),
            MethodCommand::Login {
                password_stdin: true
            }
        );
        assert_eq!(
            parse(&["auth", "login"]).unwrap(),
            MethodCommand::Login {
                password_stdin: false
            }
        );
        assert_eq!(parse(&["auth", "logout"]).unwrap(), MethodCommand::Logout);
        // The password is never a flag: it would end up in shell history.
        assert!(parse(&["auth", "login", "--password", "x"]).is_err());
    }

    #[test]
    fn every_catalogue_method_is_reachable_except_reserved_nouns() {
        for m in hearth_rpc::catalogue() {
            let args: Vec<&str> = m.name.split('.').collect();
            if RESERVED_NOUNS.contains(&args[0]) {
                assert!(!MethodCommand::has_subcommand(args[0]));
                continue;
            }
            assert!(MethodCommand::has_subcommand(args[0]), "{}", m.name);
            let specs = params::param_specs(&m.params_schema);
            let mut full: Vec<&str> = args.clone();
            // Satisfy required params through the JSON argument.
            if m.name == INSTALL {
                full.push("x.s9pk");
            } else if specs.iter().any(|s| s.required) && m.name != LOGIN {
                full.push("{}");
            }
            match parse(&full) {
                Ok(MethodCommand::Call { method, .. }) => assert_eq!(method, m.name),
                Ok(MethodCommand::Login { .. }) => assert_eq!(m.name, LOGIN),
                Ok(MethodCommand::Logout) => assert_eq!(m.name, LOGOUT),
                Ok(MethodCommand::Install { .. }) => assert_eq!(m.name, INSTALL),
                Err(e) => panic!("{}: {e}", m.name),
            }
        }
    }

    #[test]
    fn package_install_uploads_a_file_or_names_a_server_path() {
        assert_eq!(
            parse(&["package", "install", "hello.s9pk"]).unwrap(),
            MethodCommand::Install {
                source: InstallSource::Upload("hello.s9pk".into()),
                allow_untrusted: false,
            }
        );
        assert_eq!(
            parse(&[
                "package",
                "install",
                "--path",
                "/srv/hello.s9pk",
                "--allow-untrusted"
            ])
            .unwrap(),
            MethodCommand::Install {
                source: InstallSource::ServerPath("/srv/hello.s9pk".into()),
                allow_untrusted: true,
            }
        );
        // One source, not none and not two.
        assert!(parse(&["package", "install"]).is_err());
        assert!(parse(&["package", "install", "a.s9pk", "--path", "/b.s9pk"]).is_err());
        let url = parse(&["package", "install", "https://example.com/hello.s9pk"]);
        if install_takes_url() {
            assert_eq!(
                url.unwrap(),
                MethodCommand::Install {
                    source: InstallSource::Url("https://example.com/hello.s9pk".into()),
                    allow_untrusted: false,
                }
            );
        } else {
            let e = url.unwrap_err();
            assert!(e.contains("cannot install from a URL"), "{e}");
        }
    }

    #[test]
    fn generated_tree_is_a_valid_clap_command() {
        MethodCommand::augment_subcommands(Command::new("hearth")).debug_assert();
    }

    #[test]
    fn summary_is_the_first_sentence() {
        assert_eq!(summary("Return x. Use it well."), "Return x.");
        assert_eq!(summary("No period"), "No period");
        assert_eq!(
            summary("Set a value, e.g. `x`, i.e. one. Then more."),
            "Set a value, e.g. `x`, i.e. one."
        );
    }
}
