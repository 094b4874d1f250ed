//! The `station` binary: parse arguments, prepare the process for the PKCS#11 module, set up logs, run
//! the command, map errors to exit codes.

use clap::Parser;
use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use station::cli::{self, Cli, init_tracing};
use station::error::Coded;
use std::ffi::CStr;
use std::ptr::NonNull;

fn main() {
    let cli = Cli::parse();
    for (key, value) in cli::process_env(&cli) {
        // SAFETY: main runs this before it starts any thread, and nothing else reads or writes the
        // environment concurrently; the module reads these values when it initialises.
        unsafe { std::env::set_var(key, value) };
    }
    station::hsm::set_reserved_args_hook(reserved_args);
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

/// C_Initialize arguments whose `pReserved` is `[hsm] init_args` as a C string (what NSS softokn and
/// p11-kit's `x-init-reserved` expect).
fn reserved_args(params: &'static CStr) -> CInitializeArgs {
    let ptr = NonNull::new(params.as_ptr().cast_mut().cast::<std::ffi::c_void>()).expect("a C string is not null");
    // SAFETY: `params` is NUL-terminated and lives for the rest of the process, so the pointer stays valid
    // for every C_Initialize; PKCS#11 only reads through pReserved.
    unsafe { CInitializeArgs::new_with_reserved(CInitializeFlags::OS_LOCKING_OK, ptr) }
}
