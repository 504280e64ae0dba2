//! The OCPP test tools: PyPI's `ocpp` package (2.1.0) in a virtualenv that `.ci/run`
//! installs (`OCPP_VENV`, by default `~/.cache/charger-ci/ocpp-2.1.0`). Its `ChargePoint`
//! classes are the test chargers, and its JSON schemas the reference for our wire types.
//! In CI (`CI=true`) a missing virtualenv fails the test; elsewhere the test is skipped.

use std::path::PathBuf;

/// The virtualenv's python, or None (skipped; never in CI).
pub fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("OCPP_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/charger-ci/ocpp-2.1.0"))
        });
    let python = venv.map(|v| v.join("bin/python"));
    let ok = python.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", "import ocpp, websockets, jsonschema"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if ok {
        return python;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true but the ocpp virtualenv (OCPP_VENV) is missing: .ci/run installs it"
    );
    eprintln!("the ocpp virtualenv is not installed: skipping an OCPP test");
    None
}

/// A script of `tests/ocpp/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ocpp")
        .join(name)
}
