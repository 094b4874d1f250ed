//! The `station-devsim` binary: parse arguments, set up logs, run the simulated devices, map the outcome to an exit
//! status (0 all devices ok, 1 some failed, 2 the run could not start).

use clap::Parser;
use station::cli::LogFormat;
use station::devsim::{self, DevsimArgs, DevsimError};
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

fn print_error(e: &DevsimError, json: bool) {
    if json {
        let v = serde_json::json!({ "error": { "code": e.code(), "message": e.to_string(), "hint": e.hint() } });
        println!("{v}");
    } else {
        eprintln!("error[{}]: {e}", e.code());
        eprintln!("  hint: {}", e.hint());
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STATION_LOG").unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
