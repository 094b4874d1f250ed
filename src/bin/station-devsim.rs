//! The `station-devsim` binary: parse arguments, set up logs, run the simulated devices, map the outcome to an exit
//! status (0 all devices ok, 1 some failed, 2 the run could not start).

use clap::Parser;
use station::cli::{init_tracing, print_error};
use station::devsim::{self, DevsimArgs};
use station::error::Coded;

fn main() {
    let args = DevsimArgs::parse();
    init_tracing(args.log_format);
    let json = args.json;
    let mut print_line = |device: &devsim::DeviceReport| {
        if !json {
            println!("{}", device.line());
        }
    };
    let status = match devsim::run(&args, &mut print_line) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
            } else {
                println!("{}", report.summary());
            }
            report.exit_status()
        }
        Err(e) => {
            print_error(&e, json);
            e.exit_status()
        }
    };
    std::process::exit(status);
}
