//! The `station` binary: parse arguments, prepare the process for the PKCS#11 module, set up logs, run
//! the command, map errors to exit codes.

mod ffi;

use clap::Parser;
use station::cli::{self, Cli, init_tracing};
use station::error::Coded;

fn main() {
    let cli = Cli::parse();
    for (key, value) in cli::process_env(&cli) {
        // SAFETY: main runs this before it starts any thread, and nothing else reads or writes the
        // environment concurrently; the module reads these values when it initialises.
        unsafe { std::env::set_var(key, value) };
    }
    station::hsm::set_ffi_hooks(ffi::HOOKS);
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
    station::hsm::finalize_at_exit();
    std::process::exit(code);
}
