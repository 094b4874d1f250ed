//! `station init --dir DIR`: a working station in one command.

use super::{Output, Report};
use crate::Result;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::softhsm;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The folder to make the station in (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// The HSM token's label.
    #[arg(long, default_value = "station")]
    pub token_label: String,
    /// PKCS#11 module. For SoftHSM2 the token is created here; other HSMs must already have the token.
    #[arg(long, default_value = softhsm::DEFAULT_MODULE)]
    pub module: PathBuf,
    /// This station's id, recorded with every issuance [default: the host name].
    #[arg(long)]
    pub station_id: Option<String>,
    /// An environment variable the module reads, as KEY=VALUE (repeatable), written to [hsm] module_env
    /// exactly as given, e.g. TPM2_PKCS11_TCTI=device:/dev/tpmrm0. SoftHSM's SOFTHSM2_CONF is written by init.
    #[arg(long = "module-env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub module_env: Vec<(String, String)>,
    /// The module's C_Initialize parameter string, written to [hsm] init_args (NSS softokn:
    /// "configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags=").
    #[arg(long, value_name = "TEXT")]
    pub init_args: Option<String>,
}

/// `KEY=VALUE` with a POSIX-style variable name.
fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    let name_ok = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok {
        return Err(format!("{k:?} is not an environment variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}

impl InitArgs {
    /// The folder, absolute (init writes absolute paths into the config).
    fn abs_dir(&self) -> std::io::Result<PathBuf> {
        std::path::absolute(&self.dir)
    }

    /// What the module must find in the environment, in the order written to `[hsm] module_env`.
    pub fn module_env(&self) -> Vec<(String, String)> {
        let mut env = self.module_env.clone();
        if softhsm::is_softhsm(&self.module)
            && let Ok(dir) = self.abs_dir()
        {
            env.retain(|(k, _)| k != softhsm::CONF_ENV);
            env.push((softhsm::CONF_ENV.into(), dir.join("softhsm2.conf").display().to_string()));
        }
        env
    }
}

#[derive(Serialize)]
struct InitReport {
    dir: PathBuf,
    config: PathBuf,
    ledger: PathBuf,
    module: PathBuf,
    token_label: String,
    softhsm_token_created: bool,
    pin_file: PathBuf,
    so_pin_file: Option<PathBuf>,
}

pub fn run(a: &InitArgs) -> Result<Box<dyn Report>> {
    let config = a.dir.join("station.toml");
    let ledger = a.dir.join("station.db");
    for existing in [&config, &ledger] {
        if existing.exists() {
            return Err(Error::usage(
                "init-station-exists",
                format!("{} already exists: {} holds a station", existing.display(), a.dir.display()),
                "use that station (-c DIR/station.toml), or choose an empty folder; init never overwrites",
            ));
        }
    }
    let mut made = Made::default();
    let result = build(a, &mut made);
    if result.is_err() {
        made.undo();
    }
    result
}

fn build(a: &InitArgs, made: &mut Made) -> Result<Box<dyn Report>> {
    let io = |what: &str, p: &Path| {
        let what = format!("cannot {what} {}", p.display());
        move |e| Error::io("init-io-failed", what, "check the folder is writable", e)
    };
    std::fs::create_dir_all(&a.dir).map_err(io("create", &a.dir))?;
    let dir = a.abs_dir().map_err(io("resolve", &a.dir))?;
    let env = a.module_env();
    for (k, v) in &env {
        if std::env::var_os(k).as_deref() != Some(std::ffi::OsStr::new(v)) {
            return Err(crate::hsm::HsmError::ModuleEnvNotApplied { key: k.clone() }.into());
        }
    }
    let station_id = a.station_id.clone().unwrap_or_else(default_station_id);
    let soft = softhsm::is_softhsm(&a.module);
    let pin_file = dir.join("hsm-pin");
    let mut so_pin_file = None;
    if soft {
        let tokens = softhsm::token_dir(&dir);
        create_private_dir(&tokens).map_err(io("create", &tokens))?;
        made.dir(&tokens);
        let conf = dir.join("softhsm2.conf");
        write_new(&conf, &softhsm::conf_text(&tokens)).map_err(io("write", &conf))?;
        made.file(&conf);
        let (user, so) = (softhsm::random_pin(24), softhsm::random_pin(24));
        let so_path = dir.join("hsm-so-pin");
        user.write_new_file(&pin_file).map_err(io("write", &pin_file))?;
        made.file(&pin_file);
        so.write_new_file(&so_path).map_err(io("write", &so_path))?;
        made.file(&so_path);
        softhsm::init_token(&a.module, &a.token_label, &so, &user)?;
        so_pin_file = Some(so_path);
    }
    let ledger = dir.join("station.db");
    Ledger::create(&ledger)?;
    made.file(&ledger);
    made.file(&dir.join("station.db-wal"));
    made.file(&dir.join("station.db-shm"));
    let config = dir.join("station.toml");
    let text = config_text(&station_id, &a.module, &a.token_label, &env, a.init_args.as_deref());
    write_new(&config, &text).map_err(io("write", &config))?;
    made.file(&config);
    let report = InitReport {
        dir: dir.clone(),
        config: config.clone(),
        ledger,
        module: a.module.clone(),
        token_label: a.token_label.clone(),
        softhsm_token_created: soft,
        pin_file: pin_file.clone(),
        so_pin_file: so_pin_file.clone(),
    };
    let mut text = format!(
        "station initialised in {}\n  config:  {}\n  ledger:  {}\n",
        dir.display(),
        config.display(),
        report.ledger.display()
    );
    if let Some(so) = &so_pin_file {
        text += &format!(
            "  token:   {:?} (SoftHSM2, tokens in {})\n  PINs:    user PIN in {} (0600), SO PIN in {} (0600): move the SO PIN offline\n",
            a.token_label,
            softhsm::token_dir(&dir).display(),
            pin_file.display(),
            so.display()
        );
    } else {
        text += &format!(
            "  token:   {:?} on {} (not initialised by station)\n  PIN:     put the user PIN in {} (mode 0600) or set STATION_HSM_PIN\n",
            a.token_label,
            a.module.display(),
            pin_file.display()
        );
    }
    text += &format!("next: station -c {} ca create --name ca-1", config.display());
    Ok(Output::new(report, text))
}

/// The config `init` writes: the sample's shape with this station's values.
fn config_text(
    id: &str,
    module: &Path,
    label: &str,
    module_env: &[(String, String)],
    init_args: Option<&str>,
) -> String {
    let env = if module_env.is_empty() {
        "# module_env = { VENDOR_CONF = \"/etc/vendor.conf\" }\n".to_string()
    } else {
        let pairs: Vec<String> =
            module_env.iter().map(|(k, v)| format!("{k} = {}", toml::Value::String(v.clone()))).collect();
        format!("module_env = {{ {} }}\n", pairs.join(", "))
    };
    let env = match init_args {
        Some(a) => format!("{env}init_args = {}\n", toml::Value::String(a.to_string())),
        None => env,
    };
    format!(
        "# Written by `station init`. Every field is documented in the sample station.toml of the repository.\n\
         # Relative paths resolve against this file's folder.\n\n\
         [station]\nid = \"{id}\"\nstate_dir = \"state\"\n\n\
         [hsm]\nmodule = \"{}\"\ntoken_label = \"{label}\"\npin_file = \"hsm-pin\"\n{env}max_sessions = 4\n\n\
         [ca]\nkey_type = \"ec-p256\"\nsubject = \"CN={{name}},O=Station Demo,C=DE\"\ndays = 7300\n\n\
         [ledger]\npath = \"station.db\"\ngroup_commit_max = 64\n\n\
         [policy]\norganization = \"Station Demo\"\ncountry = \"DE\"\nkey_types = [\"ec-p256\", \"ec-p384\", \"rsa-2048\", \"rsa-3072\", \"rsa-4096\"]\n\
         days = 3650\n\
         # device: every device brings its serial (HELLO, or a 1.0 device's CSR CN); station: the station allocates\n\
         # them as serial_prefix + a number (schemas/bench-protocol.md 3.2). WELCOME tells 1.1 devices which.\n\
         serial_source = \"device\"\nserial_pattern = \"[A-Za-z0-9][A-Za-z0-9:-]{{0,63}}\"\n",
        module.display()
    )
}

fn default_station_id() -> String {
    let h = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let h: String = h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(64).collect();
    if h.is_empty() { "station".into() } else { h }
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn create_private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(p)
}

/// What `init` created, so a failure leaves nothing half-made.
#[derive(Default)]
struct Made {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Made {
    fn file(&mut self, p: &Path) {
        self.files.push(p.to_path_buf());
    }
    fn dir(&mut self, p: &Path) {
        self.dirs.push(p.to_path_buf());
    }
    fn undo(&self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
