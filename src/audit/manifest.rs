//! Signed manifests: a list of devices a customer can verify without the station's database.
//!
//! The file is a JWS (RFC 7515) in the flattened JSON serialization: `{"protected", "payload", "signature"}`, each
//! base64url without padding. The protected header carries `alg` (ES256, ES384 or RS256, from the audit key's type)
//! and `x5c` (RFC 7515 4.1.6: standard base64 DER, the audit certificate first, then its CA and the CA's issuers).
//! The payload is JSON: per device its serial, the SHA-256 of its certificate, its CA's fingerprint, bench, station
//! and times. The audit key in the HSM signs `protected.payload`; ECDSA signatures are the raw r‖s JWS wants.

use super::AuditError;
use super::key::AuditKey;
use crate::Result;
use crate::ledger::{Ledger, LedgerError};
use crate::pki::{self, KeyType};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::Encode;
use serde::{Deserialize, Serialize};

/// The `typ` of the protected header, and `format` of the payload.
pub const FORMAT: &str = "station-manifest-v1";

/// Which issuances a manifest lists (current certificates only: a re-issued device's newest).
#[derive(Debug, Clone)]
pub enum Selection {
    /// Issued on one bench and/or in a time window (RFC 3339 or YYYY-MM-DD; a bare `until` date is the whole day).
    Filter { bench: Option<String>, since: Option<String>, until: Option<String> },
    /// Exactly these serials (each must have a certificate).
    Serials(Vec<String>),
}

/// One device in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub serial: String,
    /// SHA-256 of the certificate's DER (lower-case hex): also its AWS IoT certificate ID.
    pub certificate_sha256: String,
    /// The certificate's serial number (hex).
    pub certificate_serial: String,
    pub ca: String,
    /// SHA-256 of the CA certificate's DER.
    pub ca_fingerprint: String,
    pub bench: String,
    pub station: String,
    pub issued_at: String,
    pub not_after: String,
}

/// The signed document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    pub format: String,
    pub station: String,
    pub created_at: String,
    /// How the devices were chosen, as given.
    pub selection: serde_json::Value,
    pub count: usize,
    pub devices: Vec<Device>,
}

/// The devices a selection names, in issuance order.
pub fn build(ledger: &Ledger, station: &str, selection: &Selection) -> Result<Payload> {
    let conn = ledger.conn();
    let cas: std::collections::HashMap<String, String> =
        ledger.cas()?.into_iter().map(|c| (c.name, c.fingerprint.unwrap_or_default())).collect();
    let mut sql = "SELECT serial, cert_id, cert_serial, ca_name, bench, issued_at, not_after FROM issuances \
                   WHERE superseded_by IS NULL"
        .to_string();
    let mut args: Vec<String> = Vec::new();
    let described = match selection {
        Selection::Filter { bench, since, until } => {
            for (clause, v) in
                [("bench =", bench.clone()), ("issued_at >=", since.clone()), ("issued_at <=", until.clone())]
            {
                if let Some(v) = v {
                    let v = if clause == "issued_at <=" && v.len() == 10 { format!("{v}T23:59:59Z") } else { v };
                    args.push(v);
                    sql += &format!(" AND {clause} ?{}", args.len());
                }
            }
            serde_json::json!({ "bench": bench, "since": since, "until": until })
        }
        Selection::Serials(list) => serde_json::json!({ "serials": list.len() }),
    };
    sql += " ORDER BY id";
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Device> {
        let ca: String = r.get(3)?;
        Ok(Device {
            serial: r.get(0)?,
            certificate_sha256: r.get(1)?,
            certificate_serial: r.get(2)?,
            ca_fingerprint: cas.get(&ca).cloned().unwrap_or_default(),
            ca,
            bench: r.get(4)?,
            station: station.to_string(),
            issued_at: r.get(5)?,
            not_after: r.get(6)?,
        })
    };
    let mut devices: Vec<Device> = {
        let mut st = conn.prepare(&sql).map_err(LedgerError::sql("read issuances"))?;
        let rows =
            st.query_map(rusqlite::params_from_iter(args.iter()), read).map_err(LedgerError::sql("read issuances"))?;
        rows.collect::<Result<_, _>>().map_err(LedgerError::sql("read issuances"))?
    };
    if let Selection::Serials(list) = selection {
        let wanted: std::collections::HashSet<&str> = list.iter().map(String::as_str).collect();
        devices.retain(|d| wanted.contains(d.serial.as_str()));
        let found: std::collections::HashSet<&str> = devices.iter().map(|d| d.serial.as_str()).collect();
        let missing: Vec<&str> = list.iter().map(String::as_str).filter(|s| !found.contains(s)).collect();
        if !missing.is_empty() {
            return Err(AuditError::ManifestSelection(format!(
                "{} serial(s) of the list have no certificate in the ledger: {}",
                missing.len(),
                missing.iter().take(10).copied().collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
    }
    if devices.is_empty() {
        return Err(AuditError::ManifestSelection("the selection matches no certificate".into()).into());
    }
    Ok(Payload {
        format: FORMAT.into(),
        station: station.into(),
        created_at: crate::ledger::now_text(),
        selection: described,
        count: devices.len(),
        devices,
    })
}

/// The JWS `alg` for a key type.
pub fn alg(kt: KeyType) -> &'static str {
    match kt {
        KeyType::EcP256 => "ES256",
        KeyType::EcP384 => "ES384",
        _ => "RS256",
    }
}

/// Signs `payload` with the audit key: the flattened JWS, as the file's text. `x5c` is the audit certificate, then
/// the CA that issued it and that CA's issuers.
pub fn sign(ledger: &Ledger, audit: &AuditKey, payload: &Payload) -> Result<String> {
    let ca = crate::ca::find(ledger, &audit.row.ca_name)?;
    let mut x5c = vec![STANDARD.encode(&audit.row.cert_der)];
    x5c.extend(ca.cert_der.iter().map(|d| STANDARD.encode(d)));
    for der in pki::certs_from_bytes(ca.chain_pem.as_bytes()).unwrap_or_default() {
        x5c.push(STANDARD.encode(der));
    }
    let header = serde_json::json!({ "alg": alg(audit.key.key_type()), "typ": FORMAT, "x5c": x5c });
    let protected = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = serde_json::to_vec(payload).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    let payload = URL_SAFE_NO_PAD.encode(body);
    let signature = audit
        .key
        .sign_jose(format!("{protected}.{payload}").as_bytes())
        .map_err(|e| LedgerError::Signing(e.to_string()))?;
    let jws = serde_json::json!({ "protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(signature) });
    Ok(serde_json::to_string_pretty(&jws).unwrap_or_default() + "\n")
}

/// What a verified manifest says.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub alg: String,
    pub station: String,
    pub created_at: String,
    pub count: usize,
    /// The audit certificate's subject and fingerprint.
    pub signer: String,
    pub signer_fingerprint: String,
    /// The trusted CA the audit certificate chains to.
    pub ca: String,
    #[serde(skip)]
    pub payload: Payload,
}

#[derive(Deserialize)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    x5c: Vec<String>,
}

/// Verifies a manifest's signature under its `x5c[0]`, that `x5c[0]` is an audit certificate that chains (through
/// `x5c`'s other certificates) to one of `anchors` (DER), and that the payload is a manifest whose count is right.
pub fn verify(path: &str, text: &str, anchors: &[Vec<u8>]) -> Result<Verified, AuditError> {
    let invalid = |problem: String| AuditError::ManifestInvalid { path: path.into(), problem };
    let jws: Flattened = serde_json::from_str(text).map_err(|e| invalid(format!("not a flattened JWS: {e}")))?;
    let decode = |what: &str, s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| invalid(format!("{what}: {e}")));
    let header: Header = serde_json::from_slice(&decode("protected", &jws.protected)?)
        .map_err(|e| invalid(format!("protected header: {e}")))?;
    let certs = header
        .x5c
        .iter()
        .map(|c| STANDARD.decode(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("x5c: {e}")))?;
    let leaf = certs.first().ok_or_else(|| invalid("x5c is empty".into()))?;
    let info = pki::inspect(leaf).map_err(|e| invalid(format!("x5c[0]: {e}")))?;
    let expected = match key_alg(&info.spki_der) {
        Some(a) => a,
        None => return Err(invalid("x5c[0] has a key type the station does not use".into())),
    };
    if header.alg != expected {
        return Err(invalid(format!("alg is {:?}, but x5c[0]'s key needs {expected}", header.alg)));
    }
    let sig = decode("signature", &jws.signature)?;
    let sig = if expected.starts_with("ES") { der_signature(&sig).ok_or_else(|| bad_sig("not r‖s"))? } else { sig };
    let input = format!("{}.{}", jws.protected, jws.payload);
    if !pki::verify_with_spki(&info.spki_der, input.as_bytes(), &sig) {
        return Err(bad_sig("it does not verify under x5c[0]'s key"));
    }
    if info.is_ca || info.key_cert_sign {
        return Err(AuditError::ManifestUntrusted("a CA certificate signed it, not an audit certificate".into()));
    }
    let ca = chain_to(&certs, anchors)
        .ok_or_else(|| AuditError::ManifestUntrusted(format!("any trusted CA (signer {})", info.subject)))?;
    let payload: Payload =
        serde_json::from_slice(&decode("payload", &jws.payload)?).map_err(|e| invalid(format!("payload: {e}")))?;
    if payload.format != FORMAT || payload.count != payload.devices.len() {
        return Err(invalid(format!("payload is not a {FORMAT} with as many devices as its count")));
    }
    Ok(Verified {
        alg: header.alg,
        station: payload.station.clone(),
        created_at: payload.created_at.clone(),
        count: payload.count,
        signer: info.subject,
        signer_fingerprint: info.fingerprint,
        ca,
        payload,
    })
}

fn bad_sig(why: &str) -> AuditError {
    AuditError::ManifestSignature(why.into())
}

/// The JWS alg a public key signs with.
fn key_alg(spki: &[u8]) -> Option<&'static str> {
    use x509_parser::prelude::FromDer;
    let (_, k) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    let curve = k.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    match (k.algorithm.algorithm.to_id_string().as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => Some("ES256"),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => Some("ES384"),
        ("1.2.840.113549.1.1.1", _) => Some("RS256"),
        _ => None,
    }
}

#[derive(der::Sequence)]
struct EcdsaSig<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

/// JWS r‖s as the DER SEQUENCE { r, s } X.509 verifiers take.
fn der_signature(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSig { r: der::asn1::UintRef::new(r).ok()?, s: der::asn1::UintRef::new(s).ok()? }.to_der().ok()
}

/// The subject of the anchor `certs[0]` chains to, walking up through `certs[1..]`.
fn chain_to(certs: &[Vec<u8>], anchors: &[Vec<u8>]) -> Option<String> {
    let mut current = certs.first()?;
    for _ in 0..certs.len() {
        if let Some(a) = anchors.iter().find(|a| pki::signed_by(current, a)) {
            return pki::inspect(a).ok().map(|i| i.subject);
        }
        current = certs[1..].iter().find(|c| *c != current && pki::signed_by(current, c))?;
    }
    None
}
