use super::*;
use crate::consumers::{parse_key, Consumer};

fn at(place: CredentialPlace, name: &str) -> CredentialLocation {
    CredentialLocation { place, name: name.into() }
}

fn consumers() -> Consumers {
    let mut c = Consumers::default();
    for (name, key) in [("alex", "hello_world"), ("anon", "")] {
        let id = c.add(Consumer::new(format!("id-{name}"), Some(name.into()), None, Vec::new()));
        if !key.is_empty() {
            c.add_key(parse_key(key).unwrap(), id, format!("cred-{name}"));
        }
    }
    c
}

fn plugin(yaml: &str, c: &Consumers) -> KeyAuth {
    let schema: KeyAuthSchema = serde_yaml::from_str(yaml).unwrap();
    KeyAuth::compile(schema, c).unwrap()
}

fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

#[test]
fn kong_answers() {
    let c = consumers();
    let ka = plugin("key_names: [apikey]", &c);
    let ok = ka.check(&req("/anything", &[("apikey", "hello_world")]), None, &c).unwrap();
    assert_eq!(c.get(ok.0.consumer).label, "alex");
    assert_eq!(ok.1, at(CredentialPlace::Header, "apikey"));
    assert_eq!(ka.check(&req("/anything", &[("apikey", "another_key")]), None, &c), Err(KeyAuthFailure::Invalid));
    assert_eq!(ka.check(&req("/anything", &[]), None, &c), Err(KeyAuthFailure::Missing));
    assert_eq!(ka.check(&req("/anything", &[("apikey", "")]), None, &c), Err(KeyAuthFailure::Missing));
    // An empty key stops the search, as in Kong.
    let ka2 = plugin("key_names: [apikey, x-key]", &c);
    assert_eq!(
        ka2.check(&req("/anything", &[("apikey", ""), ("x-key", "hello_world")]), None, &c),
        Err(KeyAuthFailure::Missing)
    );
    assert_eq!(KeyAuthFailure::Missing.message(), "No API key found in request");
    assert_eq!(KeyAuthFailure::Invalid.message(), "Unauthorized");
}

#[test]
fn header_names_are_case_insensitive_and_query_works() {
    let c = consumers();
    let ka = plugin("key_names: [ApiKey]", &c);
    assert!(ka.check(&req("/a", &[("APIKEY", "hello_world")]), None, &c).is_ok());
    let ka = plugin("key_names: [apikey]", &c);
    let (_, loc) = ka.check(&req("/a?apikey=hello%5Fworld", &[]), None, &c).unwrap();
    assert_eq!(loc, at(CredentialPlace::Query, "apikey"));
    let ka = plugin("key_names: [apikey]\nkey_in_query: false", &c);
    assert_eq!(ka.check(&req("/a?apikey=hello_world", &[]), None, &c), Err(KeyAuthFailure::Missing));
}

#[test]
fn duplicates_are_refused() {
    let c = consumers();
    let ka = plugin("{}", &c);
    let two = req("/a", &[("apikey", "hello_world"), ("apikey", "hello_world")]);
    assert_eq!(ka.check(&two, None, &c), Err(KeyAuthFailure::Duplicate));
    let both = req("/a?apikey=hello_world", &[("apikey", "hello_world")]);
    assert_eq!(ka.check(&both, None, &c), Err(KeyAuthFailure::Duplicate));
    let twice_in_query = req("/a?apikey=x&apikey=y", &[]);
    assert_eq!(ka.check(&twice_in_query, None, &c), Err(KeyAuthFailure::Duplicate));
}

#[test]
fn first_key_name_present_decides() {
    let c = consumers();
    let ka = plugin("key_names: [x-api-key, apikey]", &c);
    let (_, loc) = ka.check(&req("/a", &[("apikey", "nope"), ("x-api-key", "hello_world")]), None, &c).unwrap();
    assert_eq!(loc, at(CredentialPlace::Header, "x-api-key"));
}

#[test]
fn keys_in_bodies() {
    let c = consumers();
    let ka = plugin("key_in_body: true", &c);
    let r = req("/a", &[]);
    let json = br#"{"apikey":"hello_world","input":"hi"}"#;
    assert!(ka.check(&r, Some((json, BodyKind::Json)), &c).is_ok());
    let form = b"x=1&apikey=hello_world";
    assert!(ka.check(&r, Some((form, BodyKind::Form)), &c).is_ok());
    assert_eq!(ka.check(&r, Some((json, BodyKind::Other)), &c), Err(KeyAuthFailure::Missing));
    let not_string = br#"{"apikey":["hello_world"]}"#;
    assert_eq!(ka.check(&r, Some((not_string, BodyKind::Json)), &c), Err(KeyAuthFailure::Missing));
    // Off by default: a key in the body is not looked at.
    let ka = plugin("{}", &c);
    assert_eq!(ka.check(&r, Some((json, BodyKind::Json)), &c), Err(KeyAuthFailure::Missing));
}

#[test]
fn schema_errors() {
    let c = consumers();
    let bad = |yaml: &str| {
        let schema: KeyAuthSchema = serde_yaml::from_str(yaml).unwrap();
        KeyAuth::compile(schema, &c).unwrap_err()
    };
    assert_eq!(bad("anonymous: ghost")[0].path, "anonymous");
    assert_eq!(bad("key_names: ['bad name']")[0].path, "key_names[0]");
    assert_eq!(bad("key_names: []")[0].path, "key_names");
    assert!(serde_yaml::from_str::<KeyAuthSchema>("key_nmes: [a]").is_err());
    assert!(!bad("identity_realms: [{scope: konnect, id: x, region: us}]").is_empty());
    let ok: KeyAuthSchema = serde_yaml::from_str("identity_realms: [{scope: cp, id: null, region: null}]").unwrap();
    assert!(KeyAuth::compile(ok, &c).is_ok());
}

#[test]
fn realm() {
    let c = consumers();
    assert_eq!(&*plugin("{}", &c).www_authenticate, "Key");
    assert_eq!(&*plugin("realm: kong", &c).www_authenticate, "Key realm=\"kong\"");
}

#[test]
fn anonymous_resolves() {
    let c = consumers();
    let ka = plugin("anonymous: anon", &c);
    assert_eq!(ka.anonymous, c.find("anon"));
}
