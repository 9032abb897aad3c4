//! decK `consumers` → the consumer index: names, ACL groups, key-auth keys (kept as digests)
//! and jwt secrets.

use std::collections::HashSet;

use super::{derived_id, Entities, Findings};
use crate::consumers::{parse_key, Consumer, Consumers};

pub(super) fn extract_consumers(entities: &Entities<'_>, cx: &mut Findings<'_>) -> Consumers {
    let mut consumers = Consumers::default();
    let mut seen: HashSet<String> = HashSet::new();
    for (origin, c) in &entities.consumers {
        let username = c.username.clone().filter(|u| !u.is_empty());
        let custom_id = c.custom_id.clone().filter(|u| !u.is_empty());
        let Some(label) = username.clone().or_else(|| custom_id.clone()) else {
            cx.problem(origin, "", "the consumer has neither username nor custom_id", "give it a username");
            continue;
        };
        for (field, v) in [("username", &username), ("custom_id", &custom_id), ("id", &c.id)] {
            if let Some(v) = v {
                if !seen.insert(format!("{field}\u{0}{v}")) {
                    cx.problem(
                        origin,
                        field,
                        format!("consumer {field} \"{v}\" is used more than once"),
                        "make it unique",
                    );
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
        let id = c.id.clone().unwrap_or_else(|| derived_id("consumer", &label));
        let cid = consumers.add(Consumer::new(id.clone(), username, custom_id, groups));
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
    consumers
}
