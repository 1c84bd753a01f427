//! `hearth`: the command-line tool for package authors and administrators.
//!
//! Package authors use `hearth key` and `hearth s9pk`; administrators use the
//! client commands that talk to `hearthd`.

mod pack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Hearth: package tools and admin client.
#[derive(Parser)]
#[command(name = "hearth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with S9PK packages.
    #[command(subcommand)]
    S9pk(S9pkCommand),
}

#[derive(Subcommand)]
enum S9pkCommand {
    /// Pack a package project folder into a signed .s9pk.
    Pack(pack::PackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::S9pk(S9pkCommand::Pack(args)) => pack::run(args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
