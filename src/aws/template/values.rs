//! Every value the station can issue must be valid where the template puts it: the thing name (`[a-zA-Z0-9:_-]`, 1 to
//! 128 characters, one per device) and thing attributes (`[a-zA-Z0-9_.,@/:#=\[\]-]*`, at most 800 characters), as the
//! AWS IoT API reference (CreateThing, AttributePayload) constrains them.

use super::{DeviceSubject, PREFIX, Template, TemplateProblem};
use crate::pki::serial::MAX_SERIAL;

pub const THING_NAME_MAX: usize = 128;
pub const ATTRIBUTE_MAX: usize = 800;

pub fn thing_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

pub fn attribute_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ',' | '@' | '/' | ':' | '#' | '=' | '[' | ']' | '-')
}

/// What a certificate parameter can hold for some device: its longest length and, for a value fixed by `[policy]`,
/// the value itself (a serial is `[A-Za-z0-9.:-]` and at most `serial_max` long, the certificate ID 64 hex digits;
/// `serial_dot` is judged by `check`).
fn value_of(subject: &DeviceSubject, parameter: &str) -> (usize, Option<String>) {
    match subject.fixed.get(parameter) {
        Some(v) => (v.chars().count(), Some(v.clone())),
        None if parameter == "Id" => (64, None),
        None if subject.serial_max > 0 => (subject.serial_max, None),
        None => (MAX_SERIAL, None),
    }
}

/// The thing name and the attributes against what the device subjects can hold.
pub fn check(t: &Template, subject: &DeviceSubject) -> Result<(), TemplateProblem> {
    if t.has_thing_name {
        if let Some(c) = t.thing_name_literal.chars().find(|c| !thing_name_char(*c)) {
            return Err(TemplateProblem::ThingNameUnfit {
                why: format!(
                    "its fixed text {:?} holds {c:?}, which a thing name ([a-zA-Z0-9:_-]) cannot",
                    t.thing_name_literal
                ),
            });
        }
        let mut longest = t.thing_name_literal.chars().count();
        for p in &t.thing_name_parameters {
            let (len, fixed) = value_of(subject, p);
            longest += len;
            if let Some(c) = fixed.as_deref().and_then(|v| v.chars().find(|c| !thing_name_char(*c))) {
                return Err(TemplateProblem::ThingNameUnfit {
                    why: format!(
                        "it is made from {PREFIX}{p}, the configured {:?}, which holds {c:?}: a thing name is \
                         [a-zA-Z0-9:_-]",
                        fixed.unwrap_or_default()
                    ),
                });
            }
        }
        if longest > THING_NAME_MAX {
            return Err(TemplateProblem::ThingNameUnfit {
                why: format!("it can be {longest} characters long, and a thing name is at most {THING_NAME_MAX}"),
            });
        }
        if !["CommonName", "SerialNumber", "Id"].iter().any(|p| t.thing_name_parameters.contains(*p)) {
            return Err(TemplateProblem::ThingNameUnfit {
                why: "it is the same for every device (made from neither CommonName, SerialNumber nor Id), so every \
                      device after the first would take over one thing"
                    .into(),
            });
        }
    }
    for (attribute, (literal, parameters)) in &t.attributes {
        let mut longest = literal.chars().count();
        let bad = literal.chars().find(|c| !attribute_char(*c)).map(|c| (format!("its fixed text {literal:?}"), c));
        let mut bad = bad;
        for p in parameters {
            let (len, fixed) = value_of(subject, p);
            longest += len;
            if bad.is_none()
                && let Some(v) = fixed
                && let Some(c) = v.chars().find(|c| !attribute_char(*c))
            {
                bad = Some((format!("{PREFIX}{p}, the configured {v:?},"), c));
            }
        }
        if let Some((what, c)) = bad {
            return Err(TemplateProblem::AttributeInvalid {
                attribute: attribute.clone(),
                why: format!("{what} holds {c:?}, which a thing attribute ([a-zA-Z0-9_.,@/:#=[]-]) cannot"),
            });
        }
        if longest > ATTRIBUTE_MAX {
            return Err(TemplateProblem::AttributeInvalid {
                attribute: attribute.clone(),
                why: format!("it can be {longest} characters long, and an attribute value is at most {ATTRIBUTE_MAX}"),
            });
        }
    }
    Ok(())
}
