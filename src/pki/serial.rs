//! The serials the station issues: what an X.509 `serialNumber` attribute (PrintableString) and, where a JITP
//! template takes the AWS IoT thing name from the certificate, a thing name can hold. One rule for the config
//! check (prefix, pattern), intake (every serial before it is signed) and `ca verify` (the registered template).
//!
//! The wire's serial type (schemas/bench-protocol.md 3.1) is `A-Z a-z 0-9 . : -`, first alphanumeric, 1–64: every
//! such string is a PrintableString. AWS thing names are `[a-zA-Z0-9:_-]{1,128}`, so `.` is refused where the thing
//! name comes from the serial.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The longest serial.
pub const MAX_SERIAL: usize = 64;

/// Which serials this station may issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SerialRule {
    /// A JITP template takes the thing name from the certificate's CN or serialNumber: no `.`.
    pub thing_name: bool,
}

impl SerialRule {
    /// Whether `c` may appear in a serial.
    pub fn allows(&self, c: char) -> bool {
        c.is_ascii_alphanumeric() || c == ':' || c == '-' || (c == '.' && !self.thing_name)
    }

    /// The characters allowed, for messages.
    pub fn alphabet(&self) -> &'static str {
        if self.thing_name { "A-Z a-z 0-9 : -" } else { "A-Z a-z 0-9 . : -" }
    }

    /// Checks one serial; the error says what is wrong with it.
    pub fn check(&self, serial: &str) -> Result<(), String> {
        if serial.is_empty() || serial.len() > MAX_SERIAL {
            return Err(format!("is {} characters; a serial has 1 to {MAX_SERIAL}", serial.chars().count()));
        }
        if !serial.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("does not start with a letter or digit".into());
        }
        match serial.chars().find(|c| !self.allows(*c)) {
            Some(c) => Err(format!("contains {c:?}, {}", self.why_not(c))),
            None => Ok(()),
        }
    }

    /// Why `c` is refused.
    pub fn why_not(&self, c: char) -> &'static str {
        if c == '.' && self.thing_name {
            "which an AWS IoT thing name cannot hold (the JITP template takes the thing name from the certificate)"
        } else if is_printable_string(c) {
            "which the station never puts in a serial (it must also fit an AWS IoT thing name and a file name)"
        } else {
            "which an X.509 PrintableString (the serialNumber attribute) cannot hold"
        }
    }

    /// A character `pattern` (a `[policy] serial_pattern`) can match that this rule refuses, if any.
    pub fn escape_of_pattern(&self, pattern: &str) -> Result<Option<char>, String> {
        let hir = regex_syntax::Parser::new().parse(pattern).map_err(|e| e.to_string())?;
        Ok(first_outside(&hir, &|c| self.allows(c)))
    }
}

/// Whether `pattern` can match `target` anywhere (over-approximated as in [`SerialRule::escape_of_pattern`]).
pub fn pattern_can_match(pattern: &str, target: char) -> bool {
    regex_syntax::Parser::new().parse(pattern).is_ok_and(|hir| first_outside(&hir, &|c| c != target).is_some())
}

/// X.520's PrintableString alphabet.
fn is_printable_string(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// The first character some part of `hir` can match for which `ok` is false. Over-approximates (an unreachable
/// branch counts), which errs on the side of refusing a pattern.
fn first_outside(hir: &Hir, ok: &dyn Fn(char) -> bool) -> Option<char> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(lit) => String::from_utf8_lossy(&lit.0).chars().find(|c| !ok(*c)),
        HirKind::Class(Class::Unicode(cls)) => {
            cls.ranges().iter().find_map(|r| (r.start()..=r.end()).find(|c| !ok(*c)))
        }
        HirKind::Class(Class::Bytes(cls)) => {
            cls.ranges().iter().find_map(|r| (r.start()..=r.end()).map(char::from).find(|c| !ok(*c)))
        }
        HirKind::Repetition(rep) => first_outside(&rep.sub, ok),
        HirKind::Capture(cap) => first_outside(&cap.sub, ok),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().find_map(|h| first_outside(h, ok)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: SerialRule = SerialRule { thing_name: false };
    const JITP: SerialRule = SerialRule { thing_name: true };

    #[test]
    fn serials_are_printable_string_and_thing_name_safe_where_jitp_needs_it() {
        assert_eq!(PLAIN.check("ACME-0001"), Ok(()));
        assert_eq!(PLAIN.check("ACME.0001"), Ok(()));
        assert!(JITP.check("ACME.0001").unwrap_err().contains("thing name"));
        assert!(PLAIN.check("LINE_1/7").unwrap_err().contains("'_'"));
        assert!(PLAIN.check("ACME 1").is_err());
        assert!(PLAIN.check("1Ä").unwrap_err().contains("PrintableString"));
        assert!(PLAIN.check("-A").is_err());
        assert!(PLAIN.check("").is_err());
        assert!(PLAIN.check(&"A".repeat(65)).is_err());
    }

    #[test]
    fn a_pattern_that_can_match_a_refused_character_is_found() {
        let esc = |rule: SerialRule, p: &str| rule.escape_of_pattern(p).unwrap();
        assert_eq!(esc(PLAIN, "[A-Za-z0-9][A-Za-z0-9.:-]{0,63}"), None);
        assert_eq!(esc(JITP, "[A-Za-z0-9][A-Za-z0-9.:-]{0,63}"), Some('.'));
        assert_eq!(esc(JITP, "[A-Za-z0-9][A-Za-z0-9:-]{0,63}"), None);
        assert_eq!(esc(PLAIN, "LINE_1/[0-9]+"), Some('_'));
        assert_eq!(esc(PLAIN, r"[\w-]+"), Some('_'));
        assert!(esc(PLAIN, ".+").is_some());
        assert_eq!(esc(PLAIN, "ACME-[0-9]{8}|SN:[0-9]{6}"), None);
        assert!(PLAIN.escape_of_pattern("([").is_err());
    }
}
