//! `station ca …`: create, import, list, show, verification-cert; register and verify (AWS IoT, in ca_aws.rs).

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::ca::{self, NewCa};
use crate::error::Error;
use crate::ledger::CaRow;
use crate::pki::{self, KeyType};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Generate a CA key in the HSM and a self-signed CA certificate (or, with --intermediate, a CSR).
    Create(CreateArgs),
    /// Store the certificate an offline root signed for an intermediate CA's CSR.
    Import(ImportArgs),
    /// List the CAs.
    List,
    /// Show one CA.
    Show {
        name: String,
        /// Print the certificate alone, as PEM, so that it can be redirected into a file any tool reads.
        #[arg(long)]
        pem: bool,
    },
    /// Register the CA with AWS IoT for just-in-time provisioning, in every target region.
    Register(super::ca_aws::RegisterArgs),
    /// Verify that every (CA, region) pair is ready for JITP/JITR; exit 8 if any is not.
    Verify(super::ca_aws::VerifyArgs),
    /// Make the verification certificate AWS IoT asks for when a CA is registered.
    VerificationCert(VerificationArgs),
    /// Create the next CA (key in the HSM) and leave it ready, not active: step 1 of a rotation.
    Rotate(CreateArgs),
    /// Switch issuance to a ready CA, atomically; a running `station serve` follows within one device.
    Activate { name: String },
    /// End issuance under a CA that is not active. Its certificate stays for audits.
    Retire {
        name: String,
        /// Also disable auto-registration in every AWS IoT region it was registered in.
        #[arg(long)]
        aws: bool,
        /// With --aws, also set the CA's status there (INACTIVE: devices under it can no longer connect).
        #[arg(long, requires = "aws", value_parser = ["INACTIVE"])]
        aws_status: Option<String>,
        /// With --aws: an emulator's endpoint instead of AWS.
        #[arg(long, requires = "aws")]
        endpoint_url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: String,
    /// ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096 [default: [ca] key_type]
    #[arg(long)]
    pub key_type: Option<KeyType>,
    /// Subject DN, e.g. "CN=Factory CA 2026,O=Example Ltd,C=DE" [default: [ca] subject]
    #[arg(long)]
    pub subject: Option<String>,
    /// Validity in days [default: [ca] days]
    #[arg(long)]
    pub days: Option<u32>,
    /// Make an intermediate: write a CSR for an offline root instead of self-signing.
    #[arg(long, requires = "csr_out")]
    pub intermediate: bool,
    /// Where --intermediate writes the CSR (PEM).
    #[arg(long)]
    pub csr_out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub name: String,
    /// The signed CA certificate (PEM or DER).
    #[arg(long)]
    pub cert: PathBuf,
    /// The issuers above it, nearest first, up to and including the root (PEM).
    #[arg(long)]
    pub chain: Option<PathBuf>,
    /// The CA's key is already in the token under the label NAME (one CA key in a network HSM shared by several
    /// stations): adopt it instead of a pending CA made by `ca create --intermediate`. The certificate must be for
    /// that key.
    #[arg(long)]
    pub existing_key: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerificationArgs {
    #[arg(long)]
    pub name: String,
    /// The code from `aws iot get-registration-code`.
    #[arg(long)]
    pub registration_code: String,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cli: &Cli, cmd: &CaCommand) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    match cmd {
        CaCommand::Create(a) => create(&st, a),
        CaCommand::Register(a) => super::ca_aws::register(&st, a),
        CaCommand::Verify(a) => super::ca_aws::verify(cli, &st, a),
        CaCommand::Import(a) => {
            let cert = read(&a.cert)?;
            let chain = a.chain.as_deref().map(read).transpose()?;
            let (hsm, mut ledger) = (st.hsm()?, st.ledger()?);
            if a.existing_key && ledger.ca(&a.name)?.is_none() {
                ca::adopt_existing_key(&hsm, &mut ledger, &a.name)?;
            }
            let row = ca::import(&hsm, &mut ledger, &a.name, &cert, chain.as_deref())?;
            let text = format!("imported CA {} ({}), state {}", row.name, row.subject, row.state.as_str());
            Ok(Output::new(CaView::from(&row), text))
        }
        CaCommand::List => {
            let rows = st.ledger()?.cas()?;
            let views: Vec<CaView> = rows.iter().map(CaView::from).collect();
            let mut text = format!("{:<20} {:<8} {:<9} {:<20} {}\n", "NAME", "STATE", "KEY", "NOT AFTER", "SUBJECT");
            for v in &views {
                text += &format!(
                    "{:<20} {:<8} {:<9} {:<20} {}\n",
                    v.name,
                    v.state,
                    v.key_type,
                    v.not_after.as_deref().unwrap_or("-"),
                    v.subject
                );
            }
            if views.is_empty() {
                text += "(no CAs yet: station ca create --name NAME)\n";
            }
            Ok(Output::new(views, text.trim_end()))
        }
        CaCommand::Show { name, pem: false } => {
            let row = ca::find(&st.ledger()?, name)?;
            let view = CaView::from(&row);
            let text = view.text();
            Ok(Output::new(view, text))
        }
        CaCommand::Show { name, pem: true } => {
            let row = ca::find(&st.ledger()?, name)?;
            let der = row.cert_der.as_deref().ok_or_else(|| {
                Error::from(ca::CaError::WrongState {
                    name: row.name.clone(),
                    state: row.state.as_str(),
                    wanted: "imported (it has no certificate yet)",
                })
            })?;
            let pem = pki::cert_pem(der);
            let json = serde_json::json!({ "name": row.name, "pem": pem });
            Ok(Output::new(json, pem.trim_end()))
        }
        CaCommand::Rotate(a) => rotate(cli, &st, a),
        CaCommand::Activate { name } => {
            let mut ledger = st.ledger()?;
            // With [aws] require_verified, only a CA whose registration verifies may issue.
            crate::aws::gate::require_verified(&st.config, &ledger, name)?;
            let previous = ca::activate(&mut ledger, name)?;
            let text = format!(
                "CA {name} is now active{}; running daemons switch before their next device",
                previous.as_ref().map(|p| format!(" (was {p})")).unwrap_or_default()
            );
            Ok(Output::new(serde_json::json!({ "active": name, "previous": previous }), text))
        }
        CaCommand::Retire { name, aws, aws_status, endpoint_url } => {
            retire(&st, name, *aws, aws_status.is_some(), endpoint_url.clone())
        }
        CaCommand::VerificationCert(a) => {
            let row = ca::find(&st.ledger()?, &a.name)?;
            let key = ca::signing_key(&st.hsm()?, &row)?;
            let der = row.cert_der.as_deref().unwrap_or_default();
            let pem = ca::verification_cert(der, &key, &a.registration_code)?;
            write_file(&a.out, &pem)?;
            let text = format!(
                "verification certificate for CA {} (CN={}) written to {}",
                row.name,
                a.registration_code,
                a.out.display()
            );
            Ok(Output::new(
                serde_json::json!({ "ca": row.name, "out": a.out, "common_name": a.registration_code }),
                text,
            ))
        }
    }
}

fn create(st: &Station, a: &CreateArgs) -> Result<Box<dyn Report>> {
    let d = &st.config.ca;
    let key_type = match a.key_type {
        Some(k) => k,
        None => d.key_type.parse().map_err(|e: String| Error::usage("config-field-invalid", e, "fix [ca] key_type"))?,
    };
    let new = NewCa {
        name: a.name.clone(),
        key_type,
        subject: a.subject.clone().unwrap_or_else(|| d.subject.replace("{name}", &a.name)),
        days: a.days.unwrap_or(d.days),
    };
    let hsm = st.hsm()?;
    let mut ledger = st.ledger()?;
    if a.intermediate {
        let out = a.csr_out.as_deref().unwrap_or(Path::new("ca.csr"));
        if out.exists() {
            return Err(Error::usage(
                "output-exists",
                format!("{} already exists", out.display()),
                "choose another --csr-out",
            ));
        }
        let (row, csr) = ca::create_intermediate(&hsm, &mut ledger, &new)?;
        write_file(out, &csr)?;
        let text = format!(
            "CA {} key generated in the HSM ({}); CSR written to {}\nnext: have the root sign it, then `station ca import --name {} --cert SIGNED.pem --chain ROOT.pem`",
            row.name,
            row.key_uri,
            out.display(),
            row.name
        );
        return Ok(Output::new(CaView::from(&row), text));
    }
    let row = ca::create(&hsm, &mut ledger, &new)?;
    let view = CaView::from(&row);
    Ok(Output::new(view.clone_for_report(), format!("created CA {}\n{}", row.name, view.text())))
}

/// Retires locally first (that stops issuance at once), then, with --aws, in every registered region.
/// Run again with --aws on a retired CA, it retries only the AWS part.
fn retire(
    st: &Station,
    name: &str,
    aws: bool,
    deactivate: bool,
    endpoint_url: Option<String>,
) -> Result<Box<dyn Report>> {
    let mut ledger = st.ledger()?;
    let row = ca::find(&ledger, name)?;
    let regions = if aws {
        let o = crate::aws::Overrides { endpoint_url, ..Default::default() };
        Some(crate::aws::retire::retire(&st.config, &ledger, name, deactivate, &o)?)
    } else {
        None
    };
    if row.state != crate::ledger::CaState::Retired {
        ca::retire(&mut ledger, name, serde_json::to_value(&regions).unwrap_or_default())?;
    }
    let failed: Vec<_> = regions.iter().flatten().filter(|r| r.outcome != "done").collect();
    let mut text = format!("CA {name} retired: it issues no more; its certificate stays for audits");
    for r in regions.iter().flatten() {
        text += &format!("\n  AWS {}: {} {}", r.region, r.outcome, r.message);
    }
    if !failed.is_empty() {
        text += &format!("\nhint: fix the failing regions, then run `station ca retire {name} --aws` again");
    }
    let mut out = Output::new(serde_json::json!({ "retired": name, "aws": regions }), text);
    out.status = if failed.is_empty() { 0 } else { crate::error::exit::AWS };
    Ok(out)
}

/// Rotation: a new CA, ready but not active; with `[aws]`, registered in every region and verified.
fn rotate(cli: &Cli, st: &Station, a: &CreateArgs) -> Result<Box<dyn Report>> {
    if st.ledger()?.active_ca()?.is_none() {
        return Err(Error::usage(
            "ca-rotate-nothing-active",
            "no CA is active, so there is nothing to rotate from",
            "use `station ca create --name NAME` for the first CA",
        ));
    }
    let created = create(st, a)?;
    let mut text = created.text();
    let mut v = serde_json::json!({ "ca": created.json() });
    let mut status = 0;
    if st.config.aws.is_some() && !a.intermediate {
        let reg =
            super::ca_aws::register(st, &super::ca_aws::RegisterArgs { name: a.name.clone(), ..Default::default() })?;
        let ver = super::ca_aws::verify(
            cli,
            st,
            &super::ca_aws::VerifyArgs { name: Some(a.name.clone()), ..Default::default() },
        )?;
        text += &format!("\n\n{}\n\n{}", reg.text(), ver.text());
        v["aws_register"] = reg.json();
        v["aws_verify"] = ver.json();
        status = reg.exit_status().max(ver.exit_status());
    }
    text += &format!(
        "\nthe CA is ready, not active; next: `station ca activate {}` (the line switches before its next device)",
        a.name
    );
    v["next"] = serde_json::json!(format!("station ca activate {}", a.name));
    let mut out = Output::new(v, text);
    out.status = status;
    Ok(out)
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p)
        .map_err(|e| Error::io("input-unreadable", format!("cannot read {}", p.display()), "check the path", e))
}

fn write_file(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).map_err(|e| {
        Error::io(
            "output-unwritable",
            format!("cannot write {}", p.display()),
            "check the folder exists and is writable",
            e,
        )
    })
}

/// A CA as `ca list` / `ca show` present it.
#[derive(Debug, Clone, Serialize)]
pub struct CaView {
    pub name: String,
    pub state: &'static str,
    pub subject: String,
    pub key_uri: String,
    pub key_type: String,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub fingerprint_sha256: Option<String>,
    /// The AWS IoT certificate ID (hex SHA-256 of the DER), the same value as the fingerprint.
    pub certificate_id: Option<String>,
    pub created_at: String,
}

impl From<&CaRow> for CaView {
    fn from(r: &CaRow) -> Self {
        CaView {
            name: r.name.clone(),
            state: r.state.as_str(),
            subject: r.subject.clone(),
            key_uri: r.key_uri.clone(),
            key_type: r.key_type.clone(),
            not_before: r.not_before.clone(),
            not_after: r.not_after.clone(),
            fingerprint_sha256: r.fingerprint.clone(),
            certificate_id: r.fingerprint.clone(),
            created_at: r.created_at.clone(),
        }
    }
}

impl CaView {
    fn clone_for_report(&self) -> CaView {
        self.clone()
    }

    fn text(&self) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        format!(
            "name:           {}\nstate:          {}\nsubject:        {}\nkey:            {} ({})\nvalid:          {} to {}\nsha256:         {}\ncertificate id: {}",
            self.name,
            self.state,
            self.subject,
            self.key_uri,
            self.key_type,
            o(&self.not_before),
            o(&self.not_after),
            o(&self.fingerprint_sha256),
            o(&self.certificate_id)
        )
    }
}
