//! decK files and settings from arbitrary bytes: every input is either loaded or refused with
//! problems — never a panic. The input is split into up to three files at 0xFF bytes.
#![no_main]

use std::path::PathBuf;
use std::time::Duration;

use aigate::core::Timeouts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let defaults = Timeouts { connect: Duration::from_secs(1), read: Duration::from_secs(1), write: Duration::from_secs(1) };
    let env = |k: &str| (k == "DECK_KEY").then(|| "sk-fuzz".to_string());
    let texts: Vec<(PathBuf, String)> = data
        .split(|&b| b == 0xFF)
        .take(3)
        .enumerate()
        .map(|(i, part)| (PathBuf::from(format!("f{i}.yaml")), String::from_utf8_lossy(part).into_owned()))
        .collect();
    let stores = aigate::config::LoadContext::from_settings(&aigate::config::settings::Settings::default());
    let cx = aigate::config::LoadContext { defaults, ..stores };
    let _ = aigate::config::load_texts(&texts, &cx, &env);
    if let Some((_, first)) = texts.first() {
        let _ = aigate::config::settings::Settings::from_yaml(first, None, &env);
    }
});
