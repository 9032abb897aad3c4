//! acl: allow or deny consumers by the groups in their `acls`, with Kong's answers: 401 when no
//! consumer was identified, 403 "You cannot consume this service" when the groups forbid it.

use serde::Deserialize;

use super::auth::AuthFailure;
use super::ConfigIssue;
use crate::consumers::Consumer;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSchema {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    #[serde(default)]
    pub hide_groups_header: bool,
    #[serde(default)]
    pub always_use_authenticated_groups: bool,
    #[serde(default)]
    pub include_consumer_groups: bool,
}

#[derive(Debug)]
pub enum AclRule {
    Allow(Vec<String>),
    Deny(Vec<String>),
}

#[derive(Debug)]
pub struct Acl {
    pub rule: AclRule,
    pub hide_groups_header: bool,
    /// Consumer groups (decK `consumer_groups`) count as ACL groups too.
    pub include_consumer_groups: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDecision {
    Allowed,
    /// No consumer: 401.
    Unauthenticated,
    /// The consumer's groups forbid it: 403.
    Forbidden,
}

pub const FORBIDDEN_MESSAGE: &str = "You cannot consume this service";

impl Acl {
    pub fn compile(schema: AclSchema) -> Result<Acl, Vec<ConfigIssue>> {
        let non_empty = |v: Option<Vec<String>>| v.filter(|v| !v.is_empty());
        let rule = match (non_empty(schema.allow), non_empty(schema.deny)) {
            (Some(a), None) => AclRule::Allow(a),
            (None, Some(d)) => AclRule::Deny(d),
            (Some(_), Some(_)) => {
                return Err(vec![ConfigIssue::new(
                    "",
                    "only one of allow and deny may be set",
                    "keep either allow or deny",
                )])
            }
            (None, None) => {
                return Err(vec![ConfigIssue::new(
                    "",
                    "one of allow or deny must be set",
                    "list the groups to allow, or to deny",
                )])
            }
        };
        if schema.always_use_authenticated_groups {
            return Err(vec![ConfigIssue::new(
                "always_use_authenticated_groups",
                "authenticated groups are not supported by aigate",
                "remove the field or set it to false",
            )]);
        }
        Ok(Acl {
            rule,
            hide_groups_header: schema.hide_groups_header,
            include_consumer_groups: schema.include_consumer_groups,
        })
    }

    /// Kong's answer: 401 `Unauthorized` without a consumer, 403 when its groups forbid it.
    pub fn check(&self, consumer: Option<&Consumer>) -> Result<(), AuthFailure> {
        match self.decide(consumer) {
            AclDecision::Allowed => Ok(()),
            AclDecision::Unauthenticated => Err(AuthFailure::new(401, "Unauthorized", "unauthenticated")),
            AclDecision::Forbidden => Err(AuthFailure::new(403, FORBIDDEN_MESSAGE, "forbidden")),
        }
    }

    pub fn decide(&self, consumer: Option<&Consumer>) -> AclDecision {
        let Some(consumer) = consumer else {
            return AclDecision::Unauthenticated;
        };
        let member = |groups: &[String]| {
            groups.iter().any(|g| {
                consumer.groups.iter().any(|c| c == g)
                    || (self.include_consumer_groups && consumer.consumer_groups.iter().any(|c| c == g))
            })
        };
        let allowed = match &self.rule {
            AclRule::Allow(groups) => member(groups),
            AclRule::Deny(groups) => !member(groups),
        };
        if allowed {
            AclDecision::Allowed
        } else {
            AclDecision::Forbidden
        }
    }
}

#[cfg(test)]
mod tests;
