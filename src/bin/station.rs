//! The `station` binary: parse arguments, set up logs, run the command, map errors to exit codes.

use clap::Parser;
use station::cli::{self, Cli, init_tracing};
use station::error::Coded;

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let code = match cli::run(&cli) {
        Ok(report) => {
            if report.printed() {
                // The command wrote its own output (an export to stdout).
            } else if cli.json {
                println!("{}", report.json());
            } else {
                println!("{}", report.text());
            }
            report.exit_status()
        }
        Err(e) => {
            cli::print_error(&e, cli.json);
            e.exit_status()
        }
    };
    std::process::exit(code);
}
