//! Tests that drive aigate with real client SDKs (Python): the virtual environment
//! `scripts/test` creates in `target/pyenv` from `tests/python/requirements.txt`. A test that
//! needs it fails with a message naming what is missing and the command that provides it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The environment's interpreter (`AIGATE_TEST_PYTHON` overrides it).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AIGATE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    python_of("")
}

/// The interpreter of `target/pyenv<suffix>` (`-mcp1`: from tests/python/requirements-mcp1.txt).
pub fn python_of(suffix: &str) -> PathBuf {
    let venv = PathBuf::from(format!("{}/target/pyenv{suffix}/bin/python", env!("CARGO_MANIFEST_DIR")));
    assert!(
        venv.exists(),
        "{} is missing: this test runs Python client SDKs from the virtual environment that \
         `scripts/test` creates (from tests/python/requirements*.txt). Run scripts/test, or set \
         AIGATE_TEST_PYTHON to a Python that has those packages.",
        venv.display()
    );
    venv
}

/// The interpreter, once `modules` import in it.
pub fn with_modules(modules: &[&str]) -> PathBuf {
    require(python(), modules)
}

/// `python`, once `modules` import in it.
pub fn require(python: PathBuf, modules: &[&str]) -> PathBuf {
    for m in modules {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {m}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the Python package `{m}` is not installed in {}: list it in tests/python/requirements*.txt \
             and run scripts/test",
            python.display()
        );
    }
    python
}

/// Run a Python script with `env`, needing `modules`; its output (stdout, stderr, status).
pub fn run(script: &str, modules: &[&str], env: &[(&str, &str)]) -> Output {
    run_with(with_modules(modules), script, env)
}

/// Run a script with this interpreter.
pub fn run_with(python: PathBuf, script: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(python);
    cmd.args(["-c", script]).env_remove("OPENAI_API_KEY").env_remove("OPENAI_BASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running python")
}
