use crate::error::{Coded, exit};
use std::path::PathBuf;

/// An AWS IoT registration or verification failure that stops a command (per-region results that
/// fail are rows of a report, not errors).
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS regions to work on: the config has no [aws] section and no --region was given")]
    NotConfigured,
    #[error("{region:?} is not an AWS region")]
    BadRegion { region: String },
    #[error("JITP needs a provisioning role, and [aws] role_arn is not set")]
    RoleArnMissing,
    #[error("cannot read the JITP template {path}: {source}")]
    TemplateUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the JITP template {origin} is not valid: {problem}")]
    TemplateInvalid { origin: String, problem: String },
    #[error("the JITP template {origin} uses {parameter}, which the device certificates do not carry: {why}")]
    TemplateParameterUnfilled { origin: String, parameter: String, why: String },
    #[error("the JITP template {origin} {parameter}: {why}")]
    TemplateThingNameInvalid { origin: String, parameter: String, why: String },
    #[error("the JITP template {origin} sets thing attribute {attribute} to a value some device cannot have: {why}")]
    TemplateAttributeInvalid { origin: String, attribute: String, why: String },
    #[error("CA {name:?} is {state}: it cannot be registered with AWS IoT")]
    CaNotRegistrable { name: String, state: &'static str },
    #[error("the verification certificate for region {region} does not check out locally: {problem}")]
    VerificationCertInvalid { region: String, problem: String },
    #[error("cannot start the AWS client runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("CA {ca:?} has no AWS IoT verification for {region}, and [aws] require_verified is on")]
    VerificationMissing { ca: String, region: String },
    #[error("the last AWS IoT verification of CA {ca:?} in {region} is from {at}, older than {max_age}")]
    VerificationStale { ca: String, region: String, at: String, max_age: String },
    #[error("CA {:?} failed its AWS IoT verification in {} at {}: {}: {}", .0.ca, .0.region, .0.at, .0.check, .0.message)]
    VerificationFailed(Box<FailedVerification>),
}

/// The newest verification of a (CA, region) pair, which did not pass.
#[derive(Debug)]
pub struct FailedVerification {
    pub ca: String,
    pub region: String,
    pub at: String,
    /// The failing check's code (or the error's).
    pub check: String,
    pub message: String,
    pub remedy: String,
}

impl Coded for AwsError {
    fn code(&self) -> &'static str {
        match self {
            AwsError::NotConfigured => "aws-not-configured",
            AwsError::BadRegion { .. } => "aws-region-invalid",
            AwsError::RoleArnMissing => "aws-role-arn-missing",
            AwsError::TemplateUnreadable { .. } => "aws-template-unreadable",
            AwsError::TemplateInvalid { .. } => "aws-template-invalid",
            AwsError::TemplateParameterUnfilled { .. } => "aws-template-parameter-unfilled",
            AwsError::TemplateThingNameInvalid { .. } => "aws-template-thing-name-invalid",
            AwsError::TemplateAttributeInvalid { .. } => "aws-template-attribute-invalid",
            AwsError::CaNotRegistrable { .. } => "aws-ca-not-registrable",
            AwsError::VerificationCertInvalid { .. } => "aws-verification-cert-invalid",
            AwsError::Runtime(_) => "aws-runtime-failed",
            AwsError::VerificationMissing { .. } => "aws-verification-missing",
            AwsError::VerificationStale { .. } => "aws-verification-stale",
            AwsError::VerificationFailed(_) => "aws-verification-failed",
        }
    }

    fn hint(&self) -> String {
        match self {
            AwsError::NotConfigured => {
                "add an [aws] section with regions (docs/aws.md has a sample), or pass --region R".into()
            }
            AwsError::BadRegion { .. } => "use a region name such as eu-central-1".into(),
            AwsError::RoleArnMissing => {
                "set [aws] role_arn to a role with AWSIoTThingsRegistration, or use --mode jitr".into()
            }
            AwsError::TemplateUnreadable { .. } => {
                "fix [aws] template, or remove it to use the built-in schemas/jitp-template.json".into()
            }
            AwsError::TemplateInvalid { .. } => {
                "the template must be a JSON object with Parameters and Resources (docs/aws.md)".into()
            }
            AwsError::TemplateParameterUnfilled { .. } => {
                "remove the parameter from the template, or add the attribute to [policy] (organization, \
                 organizational_unit, country) so every device certificate carries it"
                    .into()
            }
            AwsError::TemplateThingNameInvalid { .. } => {
                "make the thing name from AWS::IoT::Certificate::Id, or keep `.` out of [policy] serial_pattern and \
                 serial_prefix"
                    .into()
            }
            AwsError::TemplateAttributeInvalid { .. } => {
                "make the attribute from the serial or the certificate ID, or change the [policy] value so it holds only \
                 [a-zA-Z0-9_.,@/:#=[]-]"
                    .into()
            }
            AwsError::CaNotRegistrable { .. } => {
                "register a CA that has its certificate and is not retired (`station ca list`)".into()
            }
            AwsError::VerificationCertInvalid { .. } => {
                "this is an HSM fault or a bug; nothing was sent to AWS. `station hsm status` checks the HSM".into()
            }
            AwsError::Runtime(_) => "check the process limits (threads, file descriptors)".into(),
            AwsError::VerificationMissing { ca, .. } | AwsError::VerificationStale { ca, .. } => {
                format!("run `station ca verify --name {ca}`")
            }
            AwsError::VerificationFailed(f) => {
                format!("{}; then run `station ca verify --name {}`", f.remedy, f.ca)
            }
        }
    }

    fn retryable(&self) -> bool {
        match self {
            // The runtime could not start (a resource limit of the moment).
            AwsError::Runtime(_) => true,
            AwsError::NotConfigured
            | AwsError::BadRegion { .. }
            | AwsError::RoleArnMissing
            | AwsError::TemplateUnreadable { .. }
            | AwsError::TemplateInvalid { .. }
            | AwsError::TemplateParameterUnfilled { .. }
            | AwsError::TemplateThingNameInvalid { .. }
            | AwsError::TemplateAttributeInvalid { .. }
            | AwsError::CaNotRegistrable { .. }
            | AwsError::VerificationCertInvalid { .. }
            | AwsError::VerificationMissing { .. }
            | AwsError::VerificationStale { .. }
            | AwsError::VerificationFailed(_) => false,
        }
    }

    fn exit_status(&self) -> i32 {
        match self {
            AwsError::NotConfigured | AwsError::BadRegion { .. } | AwsError::RoleArnMissing => exit::CONFIG,
            AwsError::TemplateUnreadable { .. }
            | AwsError::TemplateInvalid { .. }
            | AwsError::TemplateParameterUnfilled { .. }
            | AwsError::TemplateThingNameInvalid { .. }
            | AwsError::TemplateAttributeInvalid { .. } => exit::CONFIG,
            AwsError::CaNotRegistrable { .. } => exit::CA,
            AwsError::Runtime(_) => exit::INTERNAL,
            _ => exit::AWS,
        }
    }
}
