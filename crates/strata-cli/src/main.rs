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
    if invoked.as_ref().is_some_and(|n| n == "sanoid") {
        args.insert(1, "snapshot".into());
    }
    // …and as `syncoid`, as `strata replicate`.
    if invoked.as_ref().is_some_and(|n| n == "syncoid") {
        args.insert(1, "replicate".into());
    }
    // syncoid's Getopt::Long spellings (-opt, any case, abbreviations).
    if args.get(1).is_some_and(|a| a == "replicate") {
        let strs: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut norm = vec![strs[0].clone(), strs[1].clone()];
        norm.extend(commands::replicate_args::normalize(strs[2..].to_vec()));
        args = norm.into_iter().map(Into::into).collect();
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
