//! acl: allow or deny consumers by the groups in their `acls`, with Kong's answers: 401 when no
//! consumer was identified, 403 "You cannot consume this service" when the groups forbid it.

use serde::Deserialize;

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
        if schema.include_consumer_groups || schema.always_use_authenticated_groups {
            return Err(vec![ConfigIssue::new(
                if schema.include_consumer_groups {
                    "include_consumer_groups"
                } else {
                    "always_use_authenticated_groups"
                },
                "consumer groups and authenticated groups are not supported by aigate",
                "remove the field or set it to false",
            )]);
        }
        Ok(Acl { rule, hide_groups_header: schema.hide_groups_header })
    }

    pub fn decide(&self, consumer: Option<&Consumer>) -> AclDecision {
        let Some(consumer) = consumer else {
            return AclDecision::Unauthenticated;
        };
        let member = |groups: &[String]| groups.iter().any(|g| consumer.groups.iter().any(|c| c == g));
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
mod tests {
    use super::*;

    fn consumer(groups: &[&str]) -> Consumer {
        Consumer {
            id: "id".into(),
            username: Some("u".into()),
            custom_id: None,
            label: "u".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            groups_header: groups.join(", "),
        }
    }

    fn acl(yaml: &str) -> Result<Acl, Vec<ConfigIssue>> {
        Acl::compile(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn allow_and_deny() {
        let allow = acl("allow: [gold, silver]").unwrap();
        assert_eq!(allow.decide(Some(&consumer(&["silver"]))), AclDecision::Allowed);
        assert_eq!(allow.decide(Some(&consumer(&["bronze"]))), AclDecision::Forbidden);
        assert_eq!(allow.decide(Some(&consumer(&[]))), AclDecision::Forbidden);
        assert_eq!(allow.decide(None), AclDecision::Unauthenticated);
        let deny = acl("deny: [blocked]").unwrap();
        assert_eq!(deny.decide(Some(&consumer(&["blocked", "gold"]))), AclDecision::Forbidden);
        assert_eq!(deny.decide(Some(&consumer(&["gold"]))), AclDecision::Allowed);
        assert_eq!(deny.decide(None), AclDecision::Unauthenticated);
    }

    #[test]
    fn exactly_one_list() {
        assert!(acl("allow: [a]\ndeny: [b]").is_err());
        assert!(acl("{}").is_err());
        assert!(acl("allow: []").is_err());
        assert!(acl("allow: [a]\ninclude_consumer_groups: true").is_err());
        assert!(serde_yaml::from_str::<AclSchema>("allow: [a]\nwhitelist: [b]").is_err());
    }
}
