//! Ignore rules on exclusive directories, end to end: the real agent and controller on a temp
//! root. Volatile files never become drift; what is not ignored still does, however many
//! ignored entries sit beside it.

use std::fs;

use plumb_tests::{Controller, start_agent, wait_for, write_tree};

#[test]
fn ignored_entries_of_an_exclusive_directory_are_never_drift() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(
        m.join("m.yaml"),
        "name: m\nhosts: [\"*\"]\nignore: [\"*.swp\", \"/etc/sudoers.d/*.dpkg-*\"]\nfiles:\n  /etc/sudoers.d:\n    exclusive: true\n    ignore: [\"*~\"]\n  /etc/sudoers.d/ops:\n    content: \"%ops ALL=(ALL) ALL\\n\"\n",
    )
    .expect("write");
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/sudoers.d/ops", "%ops ALL=(ALL) ALL\n")]);
    let c = Controller::start(&m, &tmp.path().join("data"));
    let _agent = start_agent(&c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[]);

    // Volatile files, more than an agent lists, then one that is not.
    let d = root.join("etc/sudoers.d");
    for i in 0..120 {
        fs::write(d.join(format!(".ops{i}.swp")), "").expect("write");
    }
    fs::write(d.join("ops~"), "").expect("write");
    fs::write(d.join("ops.dpkg-old"), "").expect("write");
    fs::write(d.join("backdoor"), "ALL ALL=(ALL) NOPASSWD: ALL\n").expect("write");
    let v = c.expect_drift(
        "h1",
        &[(
            "file:/etc/sudoers.d/backdoor",
            "undeclared",
            "absent (exclusive directory /etc/sudoers.d)",
            "present",
        )],
    );
    assert_eq!(
        v["drift"].as_array().map(Vec::len),
        Some(1),
        "the backdoor alone: {v:#}"
    );
    fs::remove_file(d.join("backdoor")).expect("rm");
    c.expect_drift("h1", &[]);
    // The declared file itself is never ignored, whatever its name.
    fs::write(d.join("ops"), "%ops ALL=(ALL) NOPASSWD: ALL\n").expect("write");
    wait_for("the declared file's drift", || {
        let v = c.json(&["drift", "h1"]);
        (v["hosts"][0]["drift"][0]["resource"] == "file:/etc/sudoers.d/ops").then_some(())
    });
}
