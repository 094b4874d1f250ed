//! One AWS IoT client per region: the account's profile, the endpoint, the timeout and retry settings, and
//! a rate limiter that keeps the station under the 10 TPS default quotas. SDK errors become a `CallError`
//! with a kind, a stable code and a remedy.

use super::Settings;
use crate::config::AwsRegion;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::{AutoRegistrationStatus, CaCertificateStatus, CertificateMode, RegistrationConfig};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

mod reads;
pub use reads::{ListedRule, RoleFound, RolePolicy, RuleBody};

/// Spaces calls evenly: at most `tps` per second, shared by every task using one account and region.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Limiter {
    pub fn new(tps: u32) -> Arc<Limiter> {
        Arc::new(Limiter { interval: Duration::from_secs(1) / tps.max(1), next: Mutex::new(Instant::now()) })
    }

    /// Waits for the next free slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// An AWS IoT client for one region (and the account its profile names).
#[derive(Debug, Clone)]
pub struct Iot {
    client: aws_sdk_iot::Client,
    /// IAM (global), at the same endpoint and account: `ca verify` reads the JITP provisioning role.
    iam: aws_sdk_iam::Client,
    pub region: AwsRegion,
    limiter: Arc<Limiter>,
    timeout: Duration,
}

/// A CA as DescribeCACertificate reports it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Described {
    pub certificate_id: String,
    pub certificate_arn: String,
    pub status: String,
    pub auto_registration_status: String,
    pub certificate_mode: String,
    #[serde(skip)]
    pub certificate_pem: String,
    pub customer_version: Option<i32>,
    pub generation_id: Option<String>,
    /// registrationConfig, present only when one is set.
    pub has_registration_config: bool,
    #[serde(skip)]
    pub template_body: Option<String>,
    pub template_name: Option<String>,
    pub role_arn: Option<String>,
}

/// A device certificate as ListCertificatesByCA or DescribeCertificate reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceCert {
    /// The certificate ID: the hex SHA-256 of the DER, as the ledger's `cert_id`.
    pub certificate_id: String,
    /// ACTIVE, INACTIVE, REVOKED, PENDING_ACTIVATION, PENDING_TRANSFER, REGISTER_INACTIVE.
    pub status: String,
    pub created: Option<String>,
    /// The CA it was registered under, when AWS says.
    pub ca_certificate_id: Option<String>,
    /// The certificate's subject (DescribeCertificate only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// What RegisterCACertificate sends.
#[derive(Debug, Clone)]
pub struct RegisterCa<'a> {
    pub ca_pem: &'a str,
    pub verification_pem: &'a str,
    /// JITP: (templateBody, roleArn). JITR: None.
    pub jitp: Option<(&'a str, &'a str)>,
}

/// The registered CA's ID and ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub certificate_id: String,
    pub certificate_arn: String,
}

/// Why a call failed, as far as the station acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallKind {
    /// No connection (refused, DNS, TLS): after every attempt.
    Unreachable,
    /// No answer within `[aws] timeout_secs`.
    Timeout,
    /// Still throttled after `[aws] max_attempts` attempts with backoff.
    Throttled,
    /// No credentials were found.
    Credentials,
    /// The credentials are not allowed, or not valid.
    Denied,
    NotFound,
    /// RegisterCACertificate: the CA is registered already (ID and ARN when AWS says them).
    AlreadyExists {
        id: Option<String>,
        arn: Option<String>,
    },
    /// Any other AWS error code.
    Service(String),
    Other,
}

/// A failed AWS call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} in {region}: {message}")]
pub struct CallError {
    pub kind: CallKind,
    pub op: &'static str,
    pub region: String,
    pub message: String,
}

impl CallError {
    /// A stable code for the failure.
    pub fn code(&self) -> &'static str {
        match self.kind {
            CallKind::Unreachable => "aws-unreachable",
            CallKind::Timeout => "aws-timeout",
            CallKind::Throttled => "aws-throttled",
            CallKind::Credentials => "aws-credentials-missing",
            CallKind::Denied => "aws-access-denied",
            CallKind::NotFound => "aws-ca-not-registered",
            CallKind::AlreadyExists { .. } => "aws-ca-already-registered",
            CallKind::Service(_) | CallKind::Other => "aws-call-failed",
        }
    }

    /// What the operator should do about it.
    pub fn remedy(&self, s: &Settings) -> String {
        let profile = |what: &str| match &self.region_profile(s) {
            Some(p) => format!("{what} for profile {p} (~/.aws/config)"),
            None => format!("{what} (environment, ~/.aws/credentials, or an instance role)"),
        };
        match &self.kind {
            CallKind::Unreachable | CallKind::Timeout => match &s.endpoint_url {
                Some(u) => format!("check that {u} ([aws] endpoint_url / --endpoint-url) is up and reachable"),
                None => format!("check the network path to AWS IoT in {} (proxy, firewall, DNS)", self.region),
            },
            CallKind::Throttled => {
                "retry later, or lower [aws] max_tps; other tools share the account's 10 TPS quota".into()
            }
            CallKind::Credentials => profile("provide AWS credentials"),
            CallKind::Denied => profile("allow iot:*CACertificate* and iot:GetRegistrationCode"),
            CallKind::NotFound => "run `station ca register`".into(),
            CallKind::AlreadyExists { .. } => "nothing to do: `station ca verify` checks it".into(),
            CallKind::Service(_) | CallKind::Other => {
                "see the message; retry, or check the AWS Health Dashboard".into()
            }
        }
    }

    fn region_profile(&self, s: &Settings) -> Option<String> {
        s.regions.iter().find(|r| r.name == self.region).and_then(|r| r.profile.clone())
    }
}

impl Iot {
    /// A client for `region`, sharing `limiter` with every other task in that account and region.
    pub async fn connect(s: &Settings, region: &AwsRegion, limiter: Arc<Limiter>) -> Iot {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .operation_timeout(s.timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.name.clone()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(s.max_attempts));
        if let Some(p) = &region.profile {
            loader = loader.profile_name(p);
        }
        if let Some(u) = &s.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let sdk = loader.load().await;
        let iam = aws_sdk_iam::config::Builder::from(&sdk)
            .region(aws_config::Region::new(reads::iam_signing_region(&region.name)))
            .build();
        Iot {
            client: aws_sdk_iot::Client::new(&sdk),
            iam: aws_sdk_iam::Client::from_conf(iam),
            region: region.clone(),
            limiter,
            timeout: s.timeout,
        }
    }

    fn fail<E>(&self, op: &'static str, e: SdkError<E>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        call_error(op, &self.region.name, self.timeout, e)
    }

    /// GetRegistrationCode.
    pub async fn registration_code(&self) -> Result<String, CallError> {
        self.limiter.wait().await;
        let out = self.client.get_registration_code().send().await.map_err(|e| self.fail("GetRegistrationCode", e))?;
        Ok(out.registration_code().unwrap_or_default().to_string())
    }

    /// DescribeCACertificate; `None` when AWS has no CA with this ID.
    pub async fn describe_ca(&self, certificate_id: &str) -> Result<Option<Described>, CallError> {
        self.limiter.wait().await;
        let out = match self.client.describe_ca_certificate().certificate_id(certificate_id).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = self.fail("DescribeCACertificate", e);
                return if err.kind == CallKind::NotFound { Ok(None) } else { Err(err) };
            }
        };
        let Some(d) = out.certificate_description() else { return Ok(None) };
        let rc = out.registration_config();
        Ok(Some(Described {
            certificate_id: d.certificate_id().unwrap_or_default().into(),
            certificate_arn: d.certificate_arn().unwrap_or_default().into(),
            status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            auto_registration_status: d.auto_registration_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            certificate_mode: d.certificate_mode().map(|s| s.as_str().to_string()).unwrap_or_default(),
            certificate_pem: d.certificate_pem().unwrap_or_default().into(),
            customer_version: d.customer_version(),
            generation_id: d.generation_id().map(String::from),
            has_registration_config: rc.is_some(),
            template_body: rc.and_then(|r| r.template_body()).map(String::from),
            template_name: rc.and_then(|r| r.template_name()).map(String::from),
            role_arn: rc.and_then(|r| r.role_arn()).map(String::from),
        }))
    }

    /// RegisterCACertificate: active, auto-registration on, certificate mode DEFAULT (needs the verification
    /// certificate), and for JITP the template and role.
    pub async fn register_ca(&self, req: &RegisterCa<'_>) -> Result<Registered, CallError> {
        self.limiter.wait().await;
        let mut call = self
            .client
            .register_ca_certificate()
            .ca_certificate(req.ca_pem)
            .verification_certificate(req.verification_pem)
            .set_as_active(true)
            .allow_auto_registration(true)
            .certificate_mode(CertificateMode::Default);
        if let Some((body, role)) = req.jitp {
            call = call.registration_config(RegistrationConfig::builder().template_body(body).role_arn(role).build());
        }
        let out = call.send().await.map_err(|e| self.fail("RegisterCACertificate", e))?;
        Ok(Registered {
            certificate_id: out.certificate_id().unwrap_or_default().into(),
            certificate_arn: out.certificate_arn().unwrap_or_default().into(),
        })
    }

    /// ListCACertificates, every page: the IDs of all CAs in the account and region.
    pub async fn list_ca_ids(&self) -> Result<Vec<String>, CallError> {
        let mut ids = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            self.limiter.wait().await;
            let out = self
                .client
                .list_ca_certificates()
                .page_size(250)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| self.fail("ListCACertificates", e))?;
            ids.extend(out.certificates().iter().filter_map(|c| c.certificate_id()).map(String::from));
            match out.next_marker() {
                Some(m) if !m.is_empty() && Some(m) != marker.as_deref() => marker = Some(m.to_string()),
                _ => return Ok(ids),
            }
        }
    }

    /// ListCertificatesByCA, one page (at most 250): the device certificates AWS holds under a CA, and the marker of
    /// the next page. The caller walks the pages, so that millions of certificates are never held at once.
    pub async fn certificates_by_ca_page(
        &self,
        ca_certificate_id: &str,
        marker: Option<&str>,
    ) -> Result<(Vec<DeviceCert>, Option<String>), CallError> {
        self.limiter.wait().await;
        let out = self
            .client
            .list_certificates_by_ca()
            .ca_certificate_id(ca_certificate_id)
            .page_size(250)
            .ascending_order(true)
            .set_marker(marker.map(String::from))
            .send()
            .await
            .map_err(|e| self.fail("ListCertificatesByCA", e))?;
        let certs = out
            .certificates()
            .iter()
            .map(|c| DeviceCert {
                certificate_id: c.certificate_id().unwrap_or_default().into(),
                status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                created: c.creation_date().map(|d| d.to_string()),
                ca_certificate_id: Some(ca_certificate_id.to_string()),
                subject: None,
            })
            .collect();
        let next = out.next_marker().filter(|m| !m.is_empty() && Some(*m) != marker).map(String::from);
        Ok((certs, next))
    }

    /// DescribeCertificate; `None` when AWS has no certificate with this ID (the device has not connected yet).
    pub async fn describe_certificate(&self, certificate_id: &str) -> Result<Option<DeviceCert>, CallError> {
        self.limiter.wait().await;
        let out = match self.client.describe_certificate().certificate_id(certificate_id).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = self.fail("DescribeCertificate", e);
                return if err.kind == CallKind::NotFound { Ok(None) } else { Err(err) };
            }
        };
        Ok(out.certificate_description().map(|d| DeviceCert {
            certificate_id: d.certificate_id().unwrap_or_default().into(),
            status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            created: d.creation_date().map(|t| t.to_string()),
            ca_certificate_id: d.ca_certificate_id().map(String::from),
            subject: d
                .certificate_pem()
                .and_then(|pem| crate::pki::certs_from_bytes(pem.as_bytes()).ok())
                .and_then(|c| c.into_iter().next())
                .and_then(|der| crate::pki::inspect(&der).ok())
                .map(|i| i.subject),
        }))
    }

    /// DescribeThing; `None` when no thing has this name.
    pub async fn describe_thing(&self, name: &str) -> Result<Option<String>, CallError> {
        self.limiter.wait().await;
        match self.client.describe_thing().thing_name(name).send().await {
            Ok(out) => Ok(Some(out.thing_arn().unwrap_or_default().to_string())),
            Err(e) => {
                let err = self.fail("DescribeThing", e);
                if err.kind == CallKind::NotFound { Ok(None) } else { Err(err) }
            }
        }
    }

    /// UpdateCACertificate: the status and/or auto-registration. For retiring a CA (`ca retire --aws`).
    pub async fn update_ca(
        &self,
        certificate_id: &str,
        active: Option<bool>,
        auto_registration: Option<bool>,
    ) -> Result<(), CallError> {
        self.limiter.wait().await;
        let status = active.map(|a| if a { CaCertificateStatus::Active } else { CaCertificateStatus::Inactive });
        let auto =
            auto_registration.map(|a| if a { AutoRegistrationStatus::Enable } else { AutoRegistrationStatus::Disable });
        self.client
            .update_ca_certificate()
            .certificate_id(certificate_id)
            .set_new_status(status)
            .set_new_auto_registration_status(auto)
            .send()
            .await
            .map_err(|e| self.fail("UpdateCACertificate", e))?;
        Ok(())
    }

    /// UpdateCACertificate: replaces the registrationConfig (JITP template and role).
    pub async fn set_registration_config(&self, certificate_id: &str, body: &str, role: &str) -> Result<(), CallError> {
        self.limiter.wait().await;
        self.client
            .update_ca_certificate()
            .certificate_id(certificate_id)
            .registration_config(RegistrationConfig::builder().template_body(body).role_arn(role).build())
            .send()
            .await
            .map_err(|e| self.fail("UpdateCACertificate", e))?;
        Ok(())
    }
}

/// Sorts an SDK error into a `CallError`.
pub fn call_error<E>(op: &'static str, region: &str, timeout: Duration, e: SdkError<E>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = cause_chain(&e);
    let kind = match &e {
        SdkError::TimeoutError(_) => CallKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => CallKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => CallKind::Unreachable,
        SdkError::ServiceError(s) => service_kind(s.err()),
        _ if text.contains("credentials") || text.contains("Credentials") => CallKind::Credentials,
        _ => CallKind::Other,
    };
    let message = match (&kind, &e) {
        (CallKind::Timeout, _) => format!("no answer within {}s ([aws] timeout_secs)", timeout.as_secs()),
        (_, SdkError::ServiceError(s)) => {
            format!("{}: {}", s.err().code().unwrap_or("error"), s.err().message().unwrap_or("no message"))
        }
        _ => text,
    };
    CallError { kind, op, region: region.into(), message }
}

/// The error and its causes, `: `-separated, without the SDK's generic wrappers and debug dumps.
fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    const GENERIC: [&str; 6] = ["dispatch failure", "io error", "other", "timeout", "user error", "unhandled error"];
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !GENERIC.contains(&s.as_str()) && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    if parts.is_empty() { "no detail".into() } else { parts.join(": ") }
}

fn service_kind<E: ProvideErrorMetadata + std::error::Error + 'static>(err: &E) -> CallKind {
    match err.code().unwrap_or_default() {
        "ThrottlingException" | "TooManyRequestsException" => CallKind::Throttled,
        // IAM answers NoSuchEntity and AccessDenied (awsQuery), IoT the *Exception forms.
        "ResourceNotFoundException" | "NoSuchEntity" => CallKind::NotFound,
        "UnauthorizedException"
        | "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException" => CallKind::Denied,
        "ResourceAlreadyExistsException" => {
            let any: &(dyn std::error::Error + 'static) = err;
            match any.downcast_ref::<aws_sdk_iot::operation::register_ca_certificate::RegisterCACertificateError>() {
                Some(aws_sdk_iot::operation::register_ca_certificate::RegisterCACertificateError::ResourceAlreadyExistsException(x)) => {
                    CallKind::AlreadyExists { id: x.resource_id().map(String::from), arn: x.resource_arn().map(String::from) }
                }
                _ => CallKind::AlreadyExists { id: None, arn: None },
            }
        }
        code => CallKind::Service(code.to_string()),
    }
}
