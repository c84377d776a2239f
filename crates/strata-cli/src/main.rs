//! The `strata` command. Only this crate touches the terminal.

mod commands;
mod names;
mod output;
mod secret;

use std::process::ExitCode;

use clap::Parser;

use crate::commands::Cli;

/// `println!` panics with "failed printing to stdout" when stdout is a closed
/// pipe; end the process there instead, silently, as Unix filters do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): with the default disposition a
    // repository server or a zfs peer that dies mid-request would kill strata
    // without a word. A closed stdout (`strata ls | head`) still ends quietly,
    // with the status a shell gives a process killed by SIGPIPE.
    quiet_on_closed_stdout();
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
