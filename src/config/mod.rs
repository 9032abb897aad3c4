//! decK files → the gateway model. Each file is templated (`${{ env "DECK_X" }}`), parsed with
//! unknown fields refused, and the files are merged in order; then every reference, name, key
//! and plugin config is checked. All problems are collected, each with its file and line.

mod compile;
pub mod deck;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::core::problems::{Problem, Problems};
use crate::core::Timeouts;
use crate::model::Config;
use crate::plugins::openid_connect::JwksRegistry;
use crate::store::ratelimit::CounterStores;
use crate::upstream::balancer::HealthRegistry;
use deck::lines::LineIndex;
use deck::schema::DeckFile;
use settings::Settings;

/// One parsed decK file.
pub struct SourceFile {
    pub path: PathBuf,
    pub lines: LineIndex,
    pub deck: DeckFile,
}

impl SourceFile {
    pub fn problem(&self, place: &str, what: String, fix: &str) -> Problem {
        Problem::new(&self.path, self.lines.line(place), what, fix).at(place.to_string())
    }
}

/// What a load needs besides the files: defaults from the settings, and the runtime stores
/// the compiled plugins hold handles into — the running process's own, so that a reload keeps
/// identity providers' keys and which LLM targets are down; fresh ones for `aigate check`.
#[derive(Clone)]
pub struct LoadContext {
    /// Upstream timeouts for services that do not set their own.
    pub defaults: Timeouts,
    /// Identity providers' key caches (openid-connect), by source.
    pub jwks: Arc<JwksRegistry>,
    /// LLM targets' passive health, by target.
    pub health: Arc<HealthRegistry>,
    /// Hosts LLM targets may be reached at over plain http (`llm_plain_http_hosts`).
    pub llm_plain_http_hosts: Vec<String>,
    /// Rate-limit and budget counters, local and on Redis (with their connections).
    pub counters: Arc<CounterStores>,
    /// CA certificates trusted for TLS besides the system roots (`tls_trusted_ca`).
    pub trusted_ca: Option<PathBuf>,
}

impl LoadContext {
    /// Fresh stores, configured from the settings.
    pub fn from_settings(s: &Settings) -> LoadContext {
        LoadContext {
            defaults: s.service_defaults(),
            jwks: Arc::new(JwksRegistry::new(s.tls_trusted_ca.clone(), s.oidc_insecure_http_hosts.clone())),
            health: Arc::new(HealthRegistry::new(s.llm_target_max_fails, s.llm_target_fail_timeout)),
            llm_plain_http_hosts: s.llm_plain_http_hosts.clone(),
            counters: Arc::new(CounterStores::default()),
            trusted_ca: s.tls_trusted_ca.clone(),
        }
    }
}

/// What a load produces besides the model: upstream host names to keep resolved.
pub struct Loaded {
    pub config: Config,
    pub upstream_hosts: Vec<(String, u16)>,
}

/// Load and merge decK files. `env` reads environment variables (for `${{ env }}`).
pub fn load(paths: &[PathBuf], cx: &LoadContext, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, Problems> {
    let mut problems = Problems::default();
    if paths.is_empty() {
        problems.push(Problem::new(
            Path::new("<settings>"),
            None,
            "no decK file is configured".into(),
            "set declarative_config",
        ));
    }
    let mut texts = Vec::with_capacity(paths.len());
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(t) => texts.push((path.clone(), t)),
            Err(e) => problems.push(Problem::new(
                path,
                None,
                format!("cannot read the decK file: {e}"),
                "check declarative_config",
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    load_texts(&texts, cx, env)
}

/// Load decK files given as (name, text), merged in order.
pub fn load_texts(
    texts: &[(PathBuf, String)],
    cx: &LoadContext,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Problems> {
    let mut problems = Problems::default();
    let mut files = Vec::new();
    let mut secrets = Vec::new();
    let mut digest = Sha256::new();
    for (path, text) in texts {
        match parse_file(path, text, env) {
            Ok((file, rendered, subs)) => {
                digest.update((path.to_string_lossy().len() as u64).to_le_bytes());
                digest.update(rendered.as_bytes());
                secrets.extend(subs);
                files.push(file);
            }
            Err((p, subs)) => {
                secrets.extend(subs);
                problems.extend(p);
            }
        }
    }
    if !problems.is_empty() {
        return Err(redact(problems, &secrets));
    }
    let digest = hex::encode(digest.finalize());
    compile::build(&files, digest, cx).map_err(|p| redact(p, &secrets))
}

type ParseOk = (SourceFile, String, Vec<String>);

fn parse_file(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ParseOk, (Problems, Vec<String>)> {
    let rendered = match deck::template::render(text, env) {
        Ok(r) => r,
        Err(errors) => {
            let mut p = Problems::default();
            for e in errors {
                p.push(Problem::new(path, Some(e.line), e.what, e.fix));
            }
            return Err((p, Vec::new()));
        }
    };
    let secrets: Vec<String> = rendered.substitutions.into_iter().map(|s| s.value).collect();
    let text = rendered.text;
    let deck: DeckFile = if text.trim().is_empty() {
        DeckFile::default()
    } else {
        match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                return Err((
                    Problems::one(Problem::new(
                        path,
                        line,
                        explain_yaml_error(&e.to_string()),
                        "fix the field named; see the decK format in README.md",
                    )),
                    secrets,
                ));
            }
        }
    };
    let lines = LineIndex::build(&text);
    let mut p = Problems::default();
    match deck.format_version.as_deref() {
        Some("1.1" | "2.1" | "3.0") => {}
        Some(v) => p.push(Problem::new(
            path,
            lines.line("_format_version"),
            format!("_format_version \"{v}\" is not supported"),
            "use \"3.0\"",
        )),
        None => p.push(Problem::new(
            path,
            Some(1),
            "_format_version is missing".into(),
            "start the file with _format_version: \"3.0\"",
        )),
    }
    if !p.is_empty() {
        return Err((p, secrets));
    }
    Ok((SourceFile { path: path.to_path_buf(), lines, deck }, text, secrets))
}

/// serde's messages name Rust-side things; say what a decK user needs.
fn explain_yaml_error(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        return format!("unknown field {rest} (aigate refuses settings it does not understand)");
    }
    msg.to_string()
}

/// Remove substituted variable values (secrets) from every message.
fn redact(mut problems: Problems, secrets: &[String]) -> Problems {
    for p in &mut problems.0 {
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            if p.what.contains(s.as_str()) {
                p.what = p.what.replace(s.as_str(), "<redacted>");
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
