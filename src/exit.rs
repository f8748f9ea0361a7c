//! Exit codes and the one-line error messages of the CLI.
//!
//! Bad configuration exits 64 (`EX_USAGE`) with one line naming the setting; other failures
//! exit 1 with the error chain on one line.

use std::process::ExitCode;

/// Exit code for bad configuration (sysexits `EX_USAGE`).
pub const CONFIG: u8 = 64;

/// A configuration problem: the message names the setting and says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub fn config(message: impl Into<String>) -> anyhow::Error {
    ConfigError(message.into()).into()
}

pub fn report(error: anyhow::Error) -> ExitCode {
    if let Some(config) = error.downcast_ref::<ConfigError>() {
        eprintln!("sluice: {config}");
        return ExitCode::from(CONFIG);
    }
    eprintln!("sluice: error: {error:#}");
    ExitCode::FAILURE
}

/// clap's errors: help and version print normally; anything else is bad configuration.
pub fn clap_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(CONFIG)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("sluice: {first} (see `sluice --help`)");
            ExitCode::from(CONFIG)
        }
    }
}
