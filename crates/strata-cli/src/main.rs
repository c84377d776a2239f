//! The `strata` command. Only this crate touches the terminal.

mod commands;
mod output;
mod secret;

use std::process::ExitCode;

use clap::Parser;

use crate::commands::Cli;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`strata ls | head`), as Unix tools do.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Installed as `sanoid` (a symlink), strata behaves as `strata snapshot`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = std::path::Path::new(&args[0])
        .file_name()
        .map(|n| n.to_owned());
    if invoked.is_some_and(|n| n == "sanoid") {
        args.insert(1, "snapshot".into());
    }
    let cli = Cli::parse_from(args);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::error(&e);
            ExitCode::from(1)
        }
    }
}
