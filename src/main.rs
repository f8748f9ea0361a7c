//! `sluice`: the one binary. Parses the command line and dispatches to a role; no logic here.

mod admin;
mod admin_http;
mod bench;
mod bench_correlator;
mod bench_log;
mod bench_stix;
mod cli;
mod demo;
mod exit;
mod openapi;
mod publish;
mod serve;
mod signal;
mod stream;
mod telemetry;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return exit::clap_error(error),
    };
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            return exit::report(
                anyhow::Error::new(error).context("cannot start the async runtime"),
            )
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => serve::up(args).await,
            Command::Gateway(args) => serve::gateway(args).await,
            Command::Web(args) => serve::web(args).await,
            Command::Correlator(args) => serve::correlator(args).await,
            Command::Migrate(args) => admin::migrate(args).await,
            Command::Accounts(command) => admin::accounts(command).await,
            Command::Plans(command) => admin::plans(command).await,
            Command::Tokens(command) => admin::tokens(command).await,
            Command::Usage(command) => admin::usage(command).await,
            Command::Admin(command) => admin_http::run(command).await,
            Command::Publish(args) => publish::run(args).await,
            Command::Stream(args) => stream::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::BenchCorrelator(args) => bench_correlator::run(args).await,
            Command::BenchLog(args) => bench_log::run(args).await,
            Command::BenchStix(args) => bench_stix::run(&args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => exit::report(error),
    }
}
