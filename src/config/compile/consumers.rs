//! decK `consumers` → the consumer index: names, ACL groups, consumer groups (top-level
//! `consumer_groups` with `consumers[].groups` or the groups' `consumers` lists), key-auth keys
//! (kept as digests) and jwt secrets.

use std::collections::hash_map::{Entry, HashMap};

use super::{derived_id, Entities, Findings, Origin};
use crate::consumers::{parse_key, Consumer, Consumers};

/// Where an identity value was first seen.
struct Taken {
    index: usize,
    origin: Origin,
    field: &'static str,
    /// Written in the file (not an id derived from the name).
    written: bool,
    value: String,
}

/// Identity values are compared as metric labels, logs and backends reading `X-Consumer-*`
/// might: without case.
fn fold_identity(v: &str) -> String {
    v.to_lowercase()
}

pub(super) fn extract_consumers(entities: &Entities<'_>, cx: &mut Findings<'_>) -> Consumers {
    // Consumer groups by name and by id → their name.
    let mut groups_by_key: HashMap<String, String> = HashMap::new();
    for (origin, g) in &entities.consumer_groups {
        let Some(name) = g.name.clone().filter(|n| !n.is_empty()) else {
            cx.problem(origin, "name", "the consumer group has no name", "give every consumer group a unique name");
            continue;
        };
        if groups_by_key.insert(name.clone(), name.clone()).is_some() {
            cx.problem(
                origin,
                "name",
                format!("consumer group name \"{name}\" is used more than once"),
                "give every consumer group a unique name",
            );
        }
        if let Some(id) = &g.id {
            groups_by_key.entry(id.clone()).or_insert_with(|| name.clone());
        }
        if !g.plugins.is_empty() {
            cx.problem(
                origin,
                "plugins",
                "plugins scoped to a consumer group are not supported by aigate",
                "scope the plugin to the consumers, a route or a service instead",
            );
        }
    }
    let mut consumers = Consumers::default();
    // Every identity value (id, username, custom_id) of every consumer, folded as compared.
    let mut taken: HashMap<String, Taken> = HashMap::new();
    for (index, (origin, c)) in entities.consumers.iter().enumerate() {
        let username = c.username.clone().filter(|u| !u.is_empty());
        let custom_id = c.custom_id.clone().filter(|u| !u.is_empty());
        let Some(label) = username.clone().or_else(|| custom_id.clone()) else {
            cx.problem(origin, "", "the consumer has neither username nor custom_id", "give it a username");
            continue;
        };
        let id = c.id.clone().unwrap_or_else(|| derived_id("consumer", &label));
        // A derived id repeats only with its label, which is reported already.
        let mut reported = false;
        let fields =
            [("username", &username, true), ("custom_id", &custom_id, true), ("id", &Some(id.clone()), c.id.is_some())];
        for (field, v, written) in fields {
            let Some(v) = v else { continue };
            match taken.entry(fold_identity(v)) {
                Entry::Vacant(e) => {
                    e.insert(Taken { index, origin: origin.clone(), field, written, value: v.clone() });
                }
                Entry::Occupied(e) if e.get().index == index => {}
                Entry::Occupied(_) if !written && reported => {}
                Entry::Occupied(e) => {
                    let first = e.get();
                    let what = if first.field == field && first.value == *v {
                        format!("consumer {field} \"{v}\" is used more than once")
                    } else {
                        format!(
                            "consumer {field} \"{v}\" is the {} \"{}\" of another consumer",
                            first.field, first.value
                        )
                    };
                    let at = cx.locate(&first.origin, if first.written { first.field } else { "" });
                    cx.problem(
                        origin,
                        if written { field } else { "" },
                        format!("{what} (at {at}); ids, usernames and custom_ids must each name one consumer, compared without case"),
                        "give each consumer identities of its own",
                    );
                    reported = true;
                }
            }
        }
        let mut groups: Vec<String> = Vec::new();
        for (ai, a) in c.acls.iter().enumerate() {
            if a.group.is_empty() {
                cx.problem(origin, &format!("acls[{ai}].group"), "the ACL group is empty", "name the group");
            } else if !groups.contains(&a.group) {
                groups.push(a.group.clone());
            }
        }
        let mut consumer = Consumer::new(id.clone(), username, custom_id, groups);
        for (gi, g) in c.groups.iter().enumerate() {
            let key = g.id.as_deref().or(g.name.as_deref()).unwrap_or("");
            match groups_by_key.get(key) {
                Some(name) if !consumer.consumer_groups.contains(name) => consumer.consumer_groups.push(name.clone()),
                Some(_) => {}
                None => cx.problem(
                    origin,
                    &format!("groups[{gi}]"),
                    format!("consumer-group '{key}' not found for consumer '{label}'"),
                    "declare the group in the top-level consumer_groups list",
                ),
            }
        }
        let cid = consumers.add(consumer);
        for (ki, k) in c.keyauth_credentials.iter().enumerate() {
            let at = format!("keyauth_credentials[{ki}]");
            match parse_key(&k.key) {
                Ok(digest) => {
                    if k.ttl.is_some_and(|t| t > 0) {
                        cx.problem(
                            origin,
                            &format!("{at}.ttl"),
                            "key expiry (ttl) is not supported",
                            "remove ttl; rotate keys by editing the file and reloading",
                        );
                    }
                    let cred_id = k.id.clone().unwrap_or_else(|| derived_id("keyauth", &format!("{id}/{ki}")));
                    if !consumers.add_key(digest, cid, cred_id) {
                        cx.problem(
                            origin,
                            &format!("{at}.key"),
                            "this key is already given to a consumer",
                            "every key must be unique",
                        );
                    }
                }
                Err(e) => cx.problem(
                    origin,
                    &format!("{at}.key"),
                    e,
                    "write the key, or its stored form from `aigate hash-key`",
                ),
            }
        }
        for (ji, j) in c.jwt_secrets.iter().enumerate() {
            let added =
                consumers.jwt.add(cid, j.key.clone(), j.algorithm.clone(), j.secret.clone(), j.rsa_public_key.clone());
            if let Err(e) = added {
                cx.problem(origin, &format!("jwt_secrets[{ji}]"), e, "see the jwt plugin in README.md");
            }
        }
    }
    // Memberships declared on the group's side.
    for (origin, g) in &entities.consumer_groups {
        let Some(name) = g.name.as_deref().filter(|n| !n.is_empty()) else { continue };
        for (mi, m) in g.consumers.iter().enumerate() {
            let key = m.username.as_deref().or(m.id.as_deref()).or(m.custom_id.as_deref()).unwrap_or("");
            match consumers.find(key) {
                Some(cid) => {
                    let c = consumers.get_mut(cid);
                    if !c.consumer_groups.iter().any(|x| x == name) {
                        c.consumer_groups.push(name.to_string());
                    }
                }
                None => cx.problem(
                    origin,
                    &format!("consumers[{mi}]"),
                    format!("consumer \"{key}\" is not defined"),
                    "declare the consumer in the consumers list (with its credentials)",
                ),
            }
        }
    }
    consumers
}
