//! `hearth`: the command-line tool for package authors and administrators.
//!
//! Package authors use `hearth key` and `hearth s9pk`; administrators use the
//! client commands that talk to `hearthd`. This file only parses arguments and
//! dispatches; each command lives in its own module. Errors are printed as one
//! line: the error and its sources joined by `: `.

mod client;
mod key;
mod pack;
mod s9pk_cmd;

use std::error::Error;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Hearth: package tools and admin client.
#[derive(Parser)]
#[command(name = "hearth", version, about)]
struct Cli {
    #[command(flatten)]
    client: client::ClientOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage package signing keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Work with S9PK packages.
    #[command(subcommand)]
    S9pk(S9pkCommand),
    /// Call any hearthd method: `hearth rpc server.echo '{"message":"hi"}'`.
    Rpc(client::RpcArgs),
    /// Methods of hearthd, generated from its method catalogue.
    #[command(flatten)]
    Method(client::MethodCommand),
}

#[derive(Subcommand)]
enum S9pkCommand {
    /// Pack a package project folder into a signed .s9pk.
    Pack(pack::PackArgs),
    /// Print a package's manifest, service spec, signer, commitment and file
    /// tree as JSON (file hashes are hex BLAKE3, as `b3sum` prints them).
    Inspect(s9pk_cmd::InspectArgs),
    /// Verify a package's signature and every hash.
    Verify(s9pk_cmd::VerifyArgs),
    /// Keep only one architecture's images (the signature stays valid).
    Filter(s9pk_cmd::FilterArgs),
    /// Pack a plain directory tree as-is (for tests and benchmarks).
    #[command(hide = true)]
    PackDir(s9pk_cmd::PackDirArgs),
}

fn boxed<E: Error + 'static>(e: E) -> Box<dyn Error> {
    Box::new(e)
}

/// The error and its sources on one line, skipping a source whose text the
/// previous message already ends with.
fn one_line(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.replace('\n', " ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.client.json();
    let result = match cli.command {
        Command::Key(cmd) => key::run(cmd, json).map_err(boxed),
        Command::S9pk(S9pkCommand::Pack(args)) => pack::run(args, json).map_err(boxed),
        Command::S9pk(S9pkCommand::Inspect(args)) => s9pk_cmd::inspect(args, json).map_err(boxed),
        Command::S9pk(S9pkCommand::Verify(args)) => s9pk_cmd::verify(args, json).map_err(boxed),
        Command::S9pk(S9pkCommand::Filter(args)) => s9pk_cmd::filter(args, json).map_err(boxed),
        Command::S9pk(S9pkCommand::PackDir(args)) => s9pk_cmd::pack_dir(args, json).map_err(boxed),
        Command::Rpc(args) => client::run_rpc(&cli.client, args).map_err(boxed),
        Command::Method(cmd) => client::run_method(&cli.client, cmd).map_err(boxed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
