//! `hark --version`: the release (Cargo's version) with the versions of the base model, the
//! word check's model and ONNX Runtime it runs on, which must be the ones `.ci/setup` fetches.

use crate::common;

/// The value of `NAME=VALUE` at the start of a line of `.ci/setup`.
fn setup_value(setup: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    setup
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!(".ci/setup has no {name}="))
        .trim()
        .to_string()
}

/// The version in a wheel's file name: `openwakeword-0.5.1-py3-none-any.whl` -> `0.5.1`.
fn wheel_version(wheel: &str) -> String {
    wheel
        .split('-')
        .nth(1)
        .unwrap_or_else(|| panic!("{wheel} is not a wheel's file name"))
        .to_string()
}

#[test]
fn version_names_the_release_the_models_and_the_runtime() {
    let setup = std::fs::read_to_string(common::root().join(".ci/setup")).expect(".ci/setup");
    let ort = setup_value(&setup, "ORT_VERSION");
    let base = wheel_version(&setup_value(&setup, "OWW_WHEEL"));
    let word = wheel_version(&setup_value(&setup, "WORD_WHEEL"));
    for flag in ["--version", "-V"] {
        let (code, out, err) = common::hark(&[flag], &common::root());
        assert_eq!(code, 0, "hark {flag}: {err}");
        let line = out.trim();
        assert_eq!(
            out.lines().count(),
            1,
            "hark {flag} prints one line: {out:?}"
        );
        let release = format!("hark {} (", env!("CARGO_PKG_VERSION"));
        assert!(
            line.starts_with(&release),
            "{line:?} does not start with {release:?}"
        );
        for part in [
            format!("base model openWakeWord {base} embedding"),
            format!("word check EfficientWord-Net {word}"),
            format!("ONNX Runtime {ort})"),
        ] {
            assert!(line.contains(&part), "{line:?} does not name {part:?}");
        }
    }
}
