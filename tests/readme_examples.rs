//! Every decK and settings example in README.md is one aigate loads: each fenced `yaml` block
//! is extracted and checked with `aigate check`, as its marker says. The marker is an HTML
//! comment (invisible on a rendered page) on the line before the block:
//!
//! - `<!-- check: settings -->`: a settings file; its `declarative_config` is replaced by
//!   tests/readme/base.yaml (through `AIGATE_DECLARATIVE_CONFIG`).
//! - `<!-- check: deck -->`: a whole decK file.
//! - `<!-- check: deck-fragment -->`: a part of one (`plugins:` etc.): `_format_version` is
//!   added and tests/readme/base.yaml (services, routes and consumers it may name) merged after.
//!
//! A yaml block without a marker fails the test: an example nobody checks is not written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::process::Command;

const README: &str = include_str!("../README.md");
const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readme/base.yaml");

struct Example {
    line: usize,
    kind: String,
    text: String,
}

fn examples() -> Vec<Example> {
    let lines: Vec<&str> = README.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```yaml" {
            let marker = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
            let kind = marker
                .trim()
                .strip_prefix("<!-- check:")
                .and_then(|m| m.strip_suffix("-->"))
                .map(|k| k.trim().to_string())
                .unwrap_or_default();
            let end = (i + 1..lines.len()).find(|&j| lines[j].trim() == "```").expect("an unclosed ```yaml block");
            out.push(Example { line: i + 1, kind, text: lines[i + 1..end].join("\n") + "\n" });
            i = end;
        }
        i += 1;
    }
    out
}

fn check(dir: &Path, settings: &str, deck: &[String], env: &[(&str, &str)]) -> (bool, String) {
    let settings_path = dir.join("aigate.yaml");
    std::fs::write(&settings_path, settings).unwrap();
    let mut files = Vec::new();
    for (i, text) in deck.iter().enumerate() {
        let p = dir.join(format!("deck-{i}.yaml"));
        std::fs::write(&p, text).unwrap();
        files.push(p.display().to_string());
    }
    let mut cmd = Command::new(support::gateway::binary());
    cmd.args(["check", "--config"]).arg(&settings_path).env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AIGATE_") || k.starts_with("DECK_")) {
        cmd.env_remove(k);
    }
    if !deck.is_empty() {
        cmd.env("AIGATE_DECLARATIVE_CONFIG", format!("[{}]", files.join(", ")));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn every_yaml_example_in_the_readme_loads() {
    let examples = examples();
    assert!(examples.len() >= 3, "README's yaml examples were not found");
    let base = std::fs::read_to_string(BASE).unwrap();
    // Values for the variables the examples read (none is a real secret).
    let env = [
        ("DECK_OPENAI_API_KEY", "sk-readme"),
        ("DECK_ANTHROPIC_API_KEY", "sk-ant-readme"),
        ("DECK_AZURE_OPENAI_KEY", "azure-readme"),
        ("DECK_GITHUB_PAT", "ghp-readme"),
        ("DECK_REDIS_PASSWORD", "redis-readme"),
    ];
    for ex in examples {
        let dir = tempfile::tempdir().unwrap();
        let (ok, output) = match ex.kind.as_str() {
            "settings" => check(dir.path(), &ex.text, std::slice::from_ref(&base), &env),
            "deck" => check(dir.path(), "proxy_listen: 127.0.0.1:1\n", std::slice::from_ref(&ex.text), &env),
            "deck-fragment" => {
                let fragment = format!("_format_version: \"3.0\"\n{}", ex.text);
                check(dir.path(), "proxy_listen: 127.0.0.1:1\n", &[fragment, base.clone()], &env)
            }
            other => panic!(
                "README.md:{}: a yaml block needs a marker on the line before it (`<!-- check: settings -->`, \
                 `deck` or `deck-fragment`), found {other:?}",
                ex.line
            ),
        };
        assert!(ok, "README.md:{} ({}) does not load:\n{}\n{output}", ex.line, ex.kind, ex.text);
    }
}
