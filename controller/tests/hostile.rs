//! Hostile manifests, property-tested: arbitrary bytes and near-manifests give a clear error
//! or a manifest, never a panic. (Hostile agent messages: `src/server/hostile.rs`.)

use plumb_controller::manifest::parse;
use proptest::prelude::*;

/// Pieces manifests are made of, so that generated documents get past the YAML parser often.
fn manifest_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name",
        "hosts",
        "labels",
        "facts",
        "files",
        "packages",
        "mode",
        "owner",
        "group",
        "content",
        "source",
        "sha256",
        "target",
        "contains",
        "exclusive",
        "absent",
        "type",
        "version",
        "manager",
        "arch",
        "os",
        "/etc/x",
        "/etc/y/z",
        "nginx",
        "verify_files",
        "*",
        "&a",
        "*a",
        "<<",
    ]);
    let value = prop::sample::select(vec![
        "",
        "\"0644\"",
        "0644",
        "true",
        "yes",
        "[]",
        "{}",
        "\"*\"",
        "[\"web-*\"]",
        "\">= 1.0\"",
        "present",
        "\"/(unclosed/\"",
        "\"!x\"",
        "files/app.conf",
        "~",
        "-1",
        "99999999999999999999",
        "\"\\u0000\"",
        "&a [1, 2]",
        "*a",
        "dpkg",
        "directory",
        "\"ab\"",
    ]);
    let line = (0usize..4, key, value)
        .prop_map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(indent)));
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_manifest_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(errors) = parse("m.yaml", &text, &mut |_| Err("no sources".into())) {
            prop_assert!(!errors.is_empty());
            prop_assert!(errors.iter().all(|e| e.file == "m.yaml" && !e.message.is_empty()));
        }
    }

    #[test]
    fn the_manifest_parser_never_panics_on_near_manifests(text in manifest_text()) {
        if let Err(errors) = parse("m.yaml", &text, &mut |_| Ok(b"content".to_vec())) {
            prop_assert!(errors.iter().all(|e| e.file == "m.yaml" && !e.message.is_empty()));
        }
    }
}
