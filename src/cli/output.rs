//! Reports: text for people, JSON for scripts. Errors print as `error[code]: message` + `hint:`.

use crate::error::Coded;
use serde::Serialize;

/// A command's result.
pub trait Report {
    /// The text an operator reads.
    fn text(&self) -> String;
    /// The JSON a script reads.
    fn json(&self) -> serde_json::Value;
    /// The exit status (non-zero when the report itself is a failure, e.g. a failed verification).
    fn exit_status(&self) -> i32 {
        0
    }
    /// True when the command already wrote its output (e.g. an export to stdout).
    fn printed(&self) -> bool {
        false
    }
}

/// Any serialisable value with a text rendering.
pub struct Output<T: Serialize> {
    pub value: T,
    pub text: String,
    pub status: i32,
    pub printed: bool,
}

impl<T: Serialize> Output<T> {
    pub fn new(value: T, text: impl Into<String>) -> Box<Self> {
        Box::new(Output { value, text: text.into(), status: 0, printed: false })
    }
}

impl<T: Serialize> Report for Output<T> {
    fn text(&self) -> String {
        self.text.clone()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.value).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
    }
    fn exit_status(&self) -> i32 {
        self.status
    }
    fn printed(&self) -> bool {
        self.printed
    }
}

/// Prints an error for a person (stderr) or a script (stdout, JSON). Any coded error: the station's, the
/// simulator's.
pub fn print_error<E: Coded + std::error::Error>(e: &E, json: bool) {
    if json {
        let v = serde_json::json!({ "error": { "code": e.code(), "message": e.to_string(), "hint": e.hint() } });
        println!("{v}");
    } else {
        eprintln!("error[{}]: {e}", e.code());
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            if !e.to_string().contains(&s.to_string()) {
                eprintln!("  cause: {s}");
            }
            src = s.source();
        }
        let hint = e.hint();
        if !hint.is_empty() {
            eprintln!("  hint: {hint}");
        }
    }
}
