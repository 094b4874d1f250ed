//! The reads `station ca verify` makes to judge a device's first connection: the account's topic rules (JITR), the
//! IoT resources a JITP template names, and the provisioning role in IAM (JITP). Each is rate-limited like the
//! CA calls; a resource that does not exist is `Ok(None)`/`Ok(false)`, not an error.

use super::{CallError, CallKind, Iot, call_error};
use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};

/// A topic rule as ListTopicRules lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub name: String,
    pub disabled: bool,
    pub topic_pattern: Option<String>,
}

/// A topic rule as GetTopicRule describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleBody {
    pub name: String,
    pub sql: String,
    pub disabled: bool,
    pub actions: usize,
}

/// An IAM role: its trust policy as IAM returns it (URL-encoded JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFound {
    pub name: String,
    pub trust_policy: String,
}

/// A policy of a role: where it comes from and its document (as IAM returns it, URL-encoded JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicy {
    /// `managed ARN` or `inline NAME`.
    pub source: String,
    /// The managed policy's ARN (None for an inline policy).
    pub arn: Option<String>,
    pub document: String,
}

/// IAM is global: its calls are signed for the partition's global region.
pub(super) fn iam_signing_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "cn-north-1"
    } else if region.starts_with("us-gov-") {
        "us-gov-west-1"
    } else {
        "us-east-1"
    }
}

impl Iot {
    fn read_error<E>(&self, op: &'static str, e: SdkError<E>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        call_error(op, &self.region.name, self.timeout, e)
    }

    /// ListTopicRules, every page.
    pub async fn list_topic_rules(&self) -> Result<Vec<ListedRule>, CallError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            self.limiter.wait().await;
            let page = self
                .client
                .list_topic_rules()
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.read_error("ListTopicRules", e))?;
            out.extend(page.rules().iter().map(|r| ListedRule {
                name: r.rule_name().unwrap_or_default().into(),
                disabled: r.rule_disabled().unwrap_or(false),
                topic_pattern: r.topic_pattern().map(String::from),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() && Some(t) != token.as_deref() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// GetTopicRule; `None` when the rule is gone (deleted since it was listed).
    pub async fn get_topic_rule(&self, name: &str) -> Result<Option<RuleBody>, CallError> {
        self.limiter.wait().await;
        let out = match self.client.get_topic_rule().rule_name(name).send().await {
            Ok(out) => out,
            Err(e) => return none_if_missing(self.read_error("GetTopicRule", e)),
        };
        Ok(out.rule().map(|r| RuleBody {
            name: r.rule_name().unwrap_or(name).into(),
            sql: r.sql().unwrap_or_default().into(),
            disabled: r.rule_disabled().unwrap_or(false),
            actions: r.actions().len(),
        }))
    }

    /// GetPolicy (an AWS IoT policy): whether it exists.
    pub async fn iot_policy_exists(&self, name: &str) -> Result<bool, CallError> {
        self.limiter.wait().await;
        let r = self.client.get_policy().policy_name(name).send().await;
        exists(r.map_err(|e| self.read_error("GetPolicy", e)))
    }

    /// DescribeThingType: whether it exists.
    pub async fn thing_type_exists(&self, name: &str) -> Result<bool, CallError> {
        self.limiter.wait().await;
        let r = self.client.describe_thing_type().thing_type_name(name).send().await;
        exists(r.map_err(|e| self.read_error("DescribeThingType", e)))
    }

    /// DescribeThingGroup: whether it exists.
    pub async fn thing_group_exists(&self, name: &str) -> Result<bool, CallError> {
        self.limiter.wait().await;
        let r = self.client.describe_thing_group().thing_group_name(name).send().await;
        exists(r.map_err(|e| self.read_error("DescribeThingGroup", e)))
    }

    /// IAM GetRole; `None` when there is no such role.
    pub async fn get_role(&self, name: &str) -> Result<Option<RoleFound>, CallError> {
        self.limiter.wait().await;
        let out = match self.iam.get_role().role_name(name).send().await {
            Ok(out) => out,
            Err(e) => return none_if_missing(self.read_error("iam:GetRole", e)),
        };
        Ok(out.role().map(|r| RoleFound {
            name: r.role_name().into(),
            trust_policy: r.assume_role_policy_document().unwrap_or_default().into(),
        }))
    }

    /// Every policy of a role: the attached managed policies (ListAttachedRolePolicies, every page; each one's default
    /// version by GetPolicy + GetPolicyVersion) and the inline ones (ListRolePolicies, every page; GetRolePolicy).
    pub async fn role_policies(&self, role: &str) -> Result<Vec<RolePolicy>, CallError> {
        let mut out = Vec::new();
        let mut arns = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            self.limiter.wait().await;
            let page = self
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| self.read_error("iam:ListAttachedRolePolicies", e))?;
            arns.extend(page.attached_policies().iter().filter_map(|p| p.policy_arn()).map(String::from));
            match page.marker() {
                Some(m) if page.is_truncated() && Some(m) != marker.as_deref() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for arn in arns {
            self.limiter.wait().await;
            let policy =
                self.iam.get_policy().policy_arn(&arn).send().await.map_err(|e| self.read_error("iam:GetPolicy", e))?;
            let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else { continue };
            self.limiter.wait().await;
            let v = self
                .iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| self.read_error("iam:GetPolicyVersion", e))?;
            let document = v.policy_version().and_then(|v| v.document()).unwrap_or_default().to_string();
            out.push(RolePolicy { source: format!("managed {arn}"), arn: Some(arn), document });
        }
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            self.limiter.wait().await;
            let page = self
                .iam
                .list_role_policies()
                .role_name(role)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| self.read_error("iam:ListRolePolicies", e))?;
            names.extend(page.policy_names().iter().cloned());
            match page.marker() {
                Some(m) if page.is_truncated() && Some(m) != marker.as_deref() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for name in names {
            self.limiter.wait().await;
            let p = self
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(&name)
                .send()
                .await
                .map_err(|e| self.read_error("iam:GetRolePolicy", e))?;
            out.push(RolePolicy { source: format!("inline {name}"), arn: None, document: p.policy_document().into() });
        }
        Ok(out)
    }
}

fn none_if_missing<T>(e: CallError) -> Result<Option<T>, CallError> {
    if e.kind == CallKind::NotFound { Ok(None) } else { Err(e) }
}

fn exists<T>(r: Result<T, CallError>) -> Result<bool, CallError> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.kind == CallKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
