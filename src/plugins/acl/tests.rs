use super::*;

fn consumer(groups: &[&str]) -> Consumer {
    Consumer::new("id".into(), Some("u".into()), None, groups.iter().map(|g| g.to_string()).collect())
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
    assert!(acl("allow: [a]\nalways_use_authenticated_groups: true").is_err());
    assert!(serde_yaml::from_str::<AclSchema>("allow: [a]\nwhitelist: [b]").is_err());
}

#[test]
fn consumer_groups_count_only_when_included() {
    let mut c = consumer(&["ops"]);
    c.consumer_groups = vec!["gold".into()];
    assert_eq!(acl("allow: [gold]").unwrap().decide(Some(&c)), AclDecision::Forbidden);
    assert_eq!(acl("allow: [gold]\ninclude_consumer_groups: true").unwrap().decide(Some(&c)), AclDecision::Allowed);
    assert_eq!(acl("deny: [gold]\ninclude_consumer_groups: true").unwrap().decide(Some(&c)), AclDecision::Forbidden);
    assert_eq!(acl("allow: [ops]\ninclude_consumer_groups: true").unwrap().decide(Some(&c)), AclDecision::Allowed);
}
