//! The command line: `aigate check` lists every problem with file and line; `aigate run`
//! refuses to start on a bad config; `aigate hash-key` prints the stored form of a key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::gateway::{binary, walkthrough_deck, GatewayProcess, GatewaySpec};

fn write_config(dir: &std::path::Path, deck: &[(&str, &str)]) -> std::path::PathBuf {
    let mut list = String::new();
    for (name, content) in deck {
        std::fs::write(dir.join(name), content).unwrap();
        list.push_str(&format!("  - {name}\n"));
    }
    let settings = dir.join("aigate.yaml");
    std::fs::write(&settings, format!("proxy_listen: 127.0.0.1:1\ndeclarative_config:\n{list}")).unwrap();
    settings
}

fn check(settings: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.arg("check").arg("--config").arg(settings).env_remove("DECK_OPENAI_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_config_checks_with_the_key_set() {
    let settings = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/aigate.yaml");
    let (code, out, err) = check(std::path::Path::new(settings), &[("DECK_OPENAI_API_KEY", "sk-x")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 services, 1 routes, 1 consumers, 1 keys)"), "{out}");
}

#[test]
fn an_unset_deck_variable_is_named_and_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    let settings = write_config(dir.path(), &refs);
    let (code, _, err) = check(&settings, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "02-ai-proxy.yaml:9: environment variable 'DECK_OPENAI_API_KEY' present in state file but not set"
        ),
        "{err}"
    );
    // `run` refuses too, with the same message.
    let out = Command::new(binary())
        .arg("run")
        .arg("--config")
        .arg(&settings)
        .env_remove("DECK_OPENAI_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DECK_OPENAI_API_KEY"));
}

#[test]
fn every_problem_is_listed_and_no_secret_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let settings = write_config(
        dir.path(),
        &[
            ("a.yaml", "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://x\n  routes:\n  - name: r\n    paths: [/r]\nplugins:\n- name: request-termination\n"),
            ("b.yaml", "_format_version: \"3.0\"\nplugins:\n- name: key-auth\n  route: ghost\n  config:\n    hide_credentials: ${{ env \"DECK_SECRET\" }}\n"),
        ],
    );
    let (code, _, err) = check(&settings, &[("DECK_SECRET", "sk-very-secret-value")]);
    assert_eq!(code, 1);
    assert!(err.contains("a.yaml:9: plugins[0].name: plugin \"request-termination\" is not supported"), "{err}");
    assert!(err.contains("b.yaml:6: plugins[0].config.hide_credentials"), "{err}");
    assert!(!err.contains("sk-very-secret-value"), "{err}");
}

#[test]
fn settings_problems() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("aigate.yaml");
    std::fs::write(&settings, "proxy_listen: nowhere\nlog_level: chatty\ndeclarative_config: missing.yaml\n").unwrap();
    let (code, _, err) = check(&settings, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("proxy_listen"), "{err}");
    assert!(err.contains("log_level"), "{err}");
    // An override from the environment is checked the same way.
    std::fs::write(&settings, "declarative_config: missing.yaml\n").unwrap();
    let (code, _, err) = check(&settings, &[("AIGATE_THREADS", "0")]);
    assert_eq!(code, 1);
    assert!(err.contains("threads"), "{err}");
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn hash_key_prints_the_stored_form_that_authenticates() {
    let mut child =
        Command::new(binary()).arg("hash-key").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"hello_world\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stored = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(stored.starts_with("sha256:") && stored.len() == 71, "{stored}");
    // A decK file holding only the stored form authenticates the plain key.
    let dir = tempfile::tempdir().unwrap();
    // An upstream that refuses: an accepted key gets 502, a refused one 401.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let deck = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{}\n  routes:\n  - name: r\n    paths: [/r]\n    plugins: [{{name: key-auth}}]\nconsumers:\n- username: alex\n  keyauth_credentials: [{{key: \"{stored}\"}}]\n",
        closed
    );
    let gw = GatewayProcess::start(dir.path(), GatewaySpec::new(&[("k.yaml", &deck)]));
    let wrong = support::gateway::http_get_blocking(gw.proxy, "/r").unwrap();
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let r =
        support::raw::send(gw.proxy, b"GET /r HTTP/1.1\r\nHost: x\r\napikey: hello_world\r\nConnection: close\r\n\r\n")
            .unwrap();
    assert_eq!(r.status, 502, "{r:?}");
}

#[test]
fn two_consumers_sharing_an_identity_are_refused_with_both_places_named() {
    let dir = tempfile::tempdir().unwrap();
    let settings = write_config(
        dir.path(),
        &[
            ("a.yaml", "_format_version: \"3.0\"\nconsumers:\n- username: alex\n  keyauth_credentials: [{key: k1}]\n"),
            ("b.yaml", "_format_version: \"3.0\"\nconsumers:\n- username: mallory\n  custom_id: Alex\n"),
        ],
    );
    let (code, _, err) = check(&settings, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("b.yaml:4: consumers[0].custom_id: consumer custom_id \"Alex\" is the username \"alex\""),
        "{err}"
    );
    assert!(err.contains("a.yaml:3: consumers[0].username"), "{err}");
}
