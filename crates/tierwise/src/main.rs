//! `tierwise`: thin binary. Parses arguments and hands off to `cmd::*`.

mod cli;
mod cmd;
mod output;

use std::process::ExitCode;

use clap::Parser;

#[cfg(feature = "bench")]
use cli::BenchCommand;
use cli::PricesCommand;
use cli::{Cli, Command, ConfigCommand, KeysCommand, QualityCommand, TeamsCommand, ToolsCommand};

/// mimalloc: the audit's workers allocate and free many small JSON values and strings per call;
/// glibc malloc cost ~13% of the audit's instructions (`crates/tierwise-audit/benches/bench_1m.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(a),
        Command::Route(a) => cmd::route::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Calibrate(a) if a.from_log => cmd::calibrate::from_log(a),
        Command::Calibrate(a) if a.cascade => cmd::cascade::calibrate(a),
        Command::Calibrate(a) => cmd::calibrate::run(a),
        Command::Tools(ToolsCommand::Eval(a)) => cmd::tools::run_eval(a),
        Command::Quality(a) => match a.command {
            Some(QualityCommand::Plan(p)) => cmd::quality::plan(p),
            None => cmd::quality::report(a.report),
        },
        Command::Keys(KeysCommand::Create(a)) => cmd::keys::create(a),
        Command::Keys(KeysCommand::List(a)) => cmd::keys::list(a),
        Command::Keys(KeysCommand::Show(a)) => cmd::keys::show(a),
        Command::Keys(KeysCommand::Update(a)) => cmd::keys::update(a),
        Command::Keys(KeysCommand::Revoke(a)) => cmd::keys::revoke(a),
        Command::Teams(TeamsCommand::Create(a)) => cmd::keys::team_create(a),
        Command::Teams(TeamsCommand::Update(a)) => cmd::keys::team_update(a),
        Command::Teams(TeamsCommand::List(a)) => cmd::keys::team_list(a),
        Command::Config(ConfigCommand::Check(a)) => cmd::config::check(a),
        Command::Prices(PricesCommand::Show(a)) => cmd::prices::show(a),
        Command::Prices(PricesCommand::Update(a)) => cmd::prices::update(a),
        #[cfg(feature = "bench")]
        Command::Bench(BenchCommand::Gateway(a)) => cmd::bench::gateway(a),
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => {
            output::error_line(&e);
            ExitCode::from(2)
        }
    }
}
