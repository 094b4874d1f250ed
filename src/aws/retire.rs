//! `ca retire --aws`: turn off auto-registration (and optionally deactivate the CA) in every region the
//! station registered it in, so no new device can provision under it in the field.

use super::{Iot, Overrides, Settings, client::Limiter};
use crate::config::{AwsRegion, Config};
use crate::ledger::Ledger;
use serde::Serialize;

/// What happened in one region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionRetirement {
    pub region: String,
    pub certificate_id: String,
    /// `done`, or the error's stable code.
    pub outcome: String,
    pub message: String,
}

/// Updates every recorded registration of `ca_name`: auto-registration DISABLE, and with `deactivate`,
/// status INACTIVE. Returns one result per region; the caller decides whether all must succeed.
pub fn retire(
    cfg: &Config,
    ledger: &Ledger,
    ca_name: &str,
    deactivate: bool,
    o: &Overrides,
) -> crate::Result<Vec<RegionRetirement>> {
    let settings = Settings::resolve(cfg, o)?;
    let regs: Vec<_> = ledger.aws_registrations()?.into_iter().filter(|r| r.ca_name == ca_name).collect();
    let rt = super::runtime()?;
    let limiter = Limiter::new(settings.max_tps);
    Ok(rt.block_on(async {
        let mut out = Vec::new();
        for reg in regs {
            let region = settings
                .regions
                .iter()
                .find(|r| r.name == reg.region)
                .cloned()
                .unwrap_or(AwsRegion { name: reg.region.clone(), profile: None });
            let iot = Iot::connect(&settings, &region, limiter.clone()).await;
            let r = iot.update_ca(&reg.certificate_id, deactivate.then_some(false), Some(false)).await;
            out.push(RegionRetirement {
                region: reg.region.clone(),
                certificate_id: reg.certificate_id.clone(),
                outcome: match &r {
                    Ok(()) => "done".into(),
                    Err(e) => e.code().into(),
                },
                message: r.err().map(|e| e.message).unwrap_or_default(),
            });
        }
        out
    }))
}
