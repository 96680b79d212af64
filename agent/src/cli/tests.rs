//! The agent's command line: merging, the checks before start, the unit install writes.

use super::*;

fn parse(args: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("plumb-agent").chain(args.iter().copied()))
        .expect("valid arguments")
}

fn run_args(args: &[&str]) -> RunArgs {
    match parse(&[&["run"], args].concat()).command {
        Command::Run(run) => run,
        _ => unreachable!("a run command"),
    }
}

fn install_args(args: &[&str]) -> InstallArgs {
    match parse(&[&["install"], args].concat()).command {
        Command::Install(install) => install,
        _ => unreachable!("an install command"),
    }
}

#[test]
fn flags_beat_the_file_and_lists_add_to_it() {
    let file = AgentFile {
        controller: Some("http://file:7700".into()),
        host_id: Some("from-file".into()),
        labels: [("role".into(), "db".into()), ("tier".into(), "1".into())].into(),
        deny_content: vec!["/etc/secret/*".into()],
        poll_interval: Some(Duration::from_secs(9)),
        tls: Some(TlsFile {
            ca: Some("/file/ca.pem".into()),
            ..TlsFile::default()
        }),
        ..AgentFile::default()
    };
    let args = run_args(&[
        "--controller",
        "https://flag:7700",
        "--label",
        "role=web",
        "--deny-content",
        "/srv/keys/*",
        "--cert",
        "/flag/agent.pem",
        "--ca",
        "/flag/ca.pem",
    ]);
    let merged = merge(args, file);
    assert_eq!(merged.controller.as_deref(), Some("https://flag:7700"));
    assert_eq!(merged.host_id.as_deref(), Some("from-file"));
    assert_eq!(
        merged.labels["role"], "web",
        "a flag replaces the file's key"
    );
    assert_eq!(merged.labels["tier"], "1", "the file's other keys stay");
    assert_eq!(merged.deny_content, ["/etc/secret/*", "/srv/keys/*"]);
    assert_eq!(merged.poll_interval, Some(Duration::from_secs(9)));
    assert_eq!(
        (merged.attribution, merged.attribution_command_lines),
        (None, None)
    );
    let on = merge(
        run_args(&["--attribution", "fanotify", "--attribution-command-lines"]),
        AgentFile {
            attribution: Some(Source::Off),
            ..AgentFile::default()
        },
    );
    assert_eq!(
        (on.attribution, on.attribution_command_lines),
        (Some(Source::Fanotify), Some(true)),
        "the flag beats the file"
    );
    let tls = merged.tls.expect("TLS files");
    assert_eq!(tls.ca, Some(PathBuf::from("/flag/ca.pem")));
    assert_eq!(tls.cert, Some(PathBuf::from("/flag/agent.pem")));
}

#[test]
fn several_controllers_are_tried_in_the_order_given() {
    for args in [
        vec!["--controller", "http://a:7700,http://b:7700"],
        vec![
            "--controller",
            "http://a:7700",
            "--controller",
            "http://b:7700",
        ],
    ] {
        let merged = merge(run_args(&args), AgentFile::default());
        let cfg = agent_config(&merged, None).expect("a configuration");
        assert_eq!(cfg.controller_urls(), ["http://a:7700", "http://b:7700"]);
    }
    let file = AgentFile {
        controller: Some("http://a:7700, http://b:7700".into()),
        ..AgentFile::default()
    };
    let cfg = agent_config(&merge(run_args(&[]), file), None).expect("a configuration");
    assert_eq!(cfg.controller_urls(), ["http://a:7700", "http://b:7700"]);
}

#[test]
fn without_any_tls_option_there_is_no_tls_section() {
    let merged = merge(
        run_args(&["--controller", "http://x"]),
        AgentFile::default(),
    );
    assert_eq!(merged.tls, None);
}

#[test]
fn the_settings_are_checked_before_the_agent_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let merged = |args: &[&str]| merge(run_args(args), AgentFile::default());

    let e = agent_config(&merged(&[]), None).expect_err("no controller");
    assert!(
        e.downcast_ref::<cli::UsageError>().is_some(),
        "a usage error (64): {e}"
    );
    assert!(e.to_string().contains("hint: give --controller URL"), "{e}");

    let missing = dir.path().join("missing");
    let e = agent_config(
        &merged(&[
            "--controller",
            "http://x",
            "--root",
            &missing.to_string_lossy(),
        ]),
        None,
    )
    .expect_err("no such root");
    assert!(e.to_string().contains("is not a directory"), "{e}");

    let e = agent_config(
        &merged(&["--controller", "http://x", "--host-id", " "]),
        None,
    )
    .expect_err("a blank host id");
    assert!(e.to_string().contains("host id cannot be empty"), "{e}");

    let cfg = agent_config(
        &merged(&[
            "--controller",
            "http://x",
            "--host-id",
            "web-1",
            "--deny-content",
            "/srv/keys/*",
        ]),
        Some(Duration::from_secs(3)),
    )
    .expect("valid");
    assert_eq!(cfg.host_id, "web-1");
    assert_eq!(cfg.ack_deadline, Duration::from_secs(3));
    assert!(cfg.deny_content.iter().any(|g| g == "/srv/keys/*"));
    assert!(
        cfg.deny_content.len() > 1,
        "added to the built-in deny list, not replacing it"
    );
}

#[test]
fn a_relative_root_is_made_absolute() {
    let cwd = std::env::current_dir().expect("cwd");
    let merged = merge(
        run_args(&["--controller", "http://x", "--root", "."]),
        AgentFile::default(),
    );
    let cfg = agent_config(&merged, None).expect("valid");
    let expected = std::fs::canonicalize(&cwd).expect("canonical");
    assert_eq!(cfg.root.host_path("/etc/motd"), expected.join("etc/motd"));
}

#[test]
fn install_writes_the_configuration_and_a_unit_for_this_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "ca").expect("write");
    let bin = dir.path().join("plumb-agent");
    std::fs::write(&bin, "").expect("write");
    let args = install_args(&[
        "--controller",
        "https://plumb.example:7700",
        "--label",
        "role=web",
        "--ca",
        &ca.to_string_lossy(),
        "--bin",
        &bin.to_string_lossy(),
    ]);
    let service = agent_service(Some(&args)).expect("valid");
    assert_eq!(service.unit, "plumb-agent.service");
    let config = &service.files[0];
    assert_eq!(config.path, PathBuf::from(AGENT_CONFIG));
    assert_eq!(config.mode, 0o600, "it may name key files");
    let written: AgentFile =
        plumb_common::config::parse(&config.content, &config.path).expect("it reads back");
    assert_eq!(
        written.controller.as_deref(),
        Some("https://plumb.example:7700")
    );
    assert_eq!(written.labels["role"], "web");
    assert_eq!(written.tls.and_then(|t| t.ca), Some(ca.clone()));
    let unit = &service.files[1];
    assert_eq!(
        unit.path,
        PathBuf::from("/etc/systemd/system/plumb-agent.service")
    );
    assert!(
        unit.content
            .contains(&format!("ExecStart={} run", bin.display())),
        "{}",
        unit.content
    );

    assert!(!unit.content.contains("CAP_SYS_ADMIN"));
    // malloc's trim threshold fixed: whole-host verification otherwise rests 6-10 MiB larger.
    assert!(
        unit.content
            .lines()
            .any(|l| l == "Environment=GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072"),
        "{}",
        unit.content
    );
    let attributing = install_args(&[
        "--controller",
        "http://x",
        "--attribution",
        "fanotify",
        "--bin",
        &bin.to_string_lossy(),
    ]);
    let service = agent_service(Some(&attributing)).expect("valid");
    let written: AgentFile =
        plumb_common::config::parse(&service.files[0].content, &service.files[0].path)
            .expect("it reads back");
    assert_eq!(written.attribution, Some(Source::Fanotify));
    let unit = &service.files[1].content;
    for line in [
        "AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
        "SystemCallFilter=fanotify_init fanotify_mark",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }

    let plain = install_args(&["--controller", "http://x", "--ca", &ca.to_string_lossy()]);
    let e = agent_service(Some(&plain)).expect_err("TLS needs https");
    assert!(e.to_string().contains("must be https://"), "{e}");
}
