//! The `station-devsim` binary: parse arguments, set up logs, run the simulated devices, map the outcome to an exit
//! status (0 all devices ok, 1 some failed, 2 the run could not start).

use clap::Parser;
use station_devsim::{self as devsim, DevsimArgs, DevsimError, LogFormat};

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

/// Logs to stderr, filtered by `STATION_LOG` (default `warn`), as text or JSON: the station's conventions.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STATION_LOG").unwrap_or_else(|_| "warn".into());
    // Colours only on a terminal: log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// As the station prints errors: with `--json`, `{"error":{"code","message","hint"}}` on stdout; otherwise
/// `error[code]: message`, any `cause:` lines and a `hint:` line on stderr.
fn print_error(e: &DevsimError, json: bool) {
    if json {
        let v = serde_json::json!({ "error": { "code": e.code(), "message": e.to_string(), "hint": e.hint() } });
        println!("{v}");
        return;
    }
    eprintln!("error[{}]: {e}", e.code());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if !e.to_string().contains(&s.to_string()) {
            eprintln!("  cause: {s}");
        }
        source = s.source();
    }
    eprintln!("  hint: {}", e.hint());
}
