//! Peers on the same work: one generated tree, one set of changes (the truth: contents
//! rewritten, modes changed, files removed), and what each tool reports, at what cost.
//! AIDE (`aide --check` against a baseline), Puppet (`puppet apply --noop`) and CFEngine
//! (`cf-agent --dry-run`) run when installed (`apt-get install aide puppet cfengine3`);
//! plumb runs as controller and agent, and its cost is the time until every change is drift
//! plus what the agent holds at rest.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use plumb_proto::v1;
use serde_json::{Value, json};

use crate::fixture;

/// Applies the changes to every 20th file (content), every 97th (mode) and every 151st
/// (removed); returns the changed paths.
fn change(paths: &[PathBuf]) -> anyhow::Result<BTreeSet<PathBuf>> {
    let mut truth = BTreeSet::new();
    for (i, p) in paths.iter().enumerate() {
        if i % 151 == 150 {
            std::fs::remove_file(p)?;
        } else if i % 20 == 19 {
            let mut content = std::fs::read(p)?;
            content.extend_from_slice(b"\n# changed\n");
            std::fs::write(p, content)?;
        } else if i % 97 == 96 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
        } else {
            continue;
        }
        truth.insert(p.clone());
    }
    Ok(truth)
}

/// How a tool did against the truth.
fn score(tool: &str, found: &BTreeSet<PathBuf>, truth: &BTreeSet<PathBuf>) -> Value {
    let hits = found.intersection(truth).count();
    let missed = truth.len() - hits;
    let false_alarms = found.difference(truth).count();
    println!(
        "peers: {tool}: found {hits} of {} changes, missed {missed}, {false_alarms} false alarms",
        truth.len()
    );
    json!({"found": hits, "missed": missed, "false_alarms": false_alarms})
}

/// `/usr/bin/time -f "%e %M"` around a command: wall seconds and peak RSS in KiB.
fn timed(cmd: &mut Command) -> anyhow::Result<(f64, u64, String)> {
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "TIME %e %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let out = wrapped.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("TIME "))
        .ok_or_else(|| anyhow::anyhow!("no timing from /usr/bin/time: {stderr}"))?;
    let mut parts = line.split_whitespace();
    let secs = parts
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let kib = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr;
    Ok((secs, kib, text))
}

fn aide(dir: &Path, tree: &Path, paths: &[PathBuf]) -> anyhow::Result<Option<Value>> {
    if Command::new("aide").arg("--version").output().is_err() {
        println!("peers: aide is not installed (apt-get install aide): skipped");
        return Ok(None);
    }
    let conf = dir.join("aide.conf");
    std::fs::write(
        &conf,
        format!(
            "database_in=file:{db}\ndatabase_out=file:{db}.new\nreport_url=stdout\n\
             Rule = p+u+g+sha256+ftype\n{tree} Rule\n",
            db = dir.join("aide.db").display(),
            tree = tree.display()
        ),
    )?;
    let (init_s, init_kib, _) = timed(Command::new("aide").arg("--init").arg("-c").arg(&conf))?;
    std::fs::rename(dir.join("aide.db.new"), dir.join("aide.db"))?;
    let truth = change(paths)?;
    let (check_s, check_kib, report) =
        timed(Command::new("aide").arg("--check").arg("-c").arg(&conf))?;
    // Entry lines: flags, then ": /path".
    let found: BTreeSet<PathBuf> = report
        .lines()
        .filter_map(|l| {
            l.split_once(": /")
                .map(|(_, p)| PathBuf::from(format!("/{p}")))
        })
        .filter(|p| p.starts_with(tree) && p.extension().is_some())
        .collect();
    println!(
        "peers: aide: baseline {init_s:.2} s, {:.0} MiB; check {check_s:.2} s, {:.0} MiB",
        init_kib as f64 / 1024.0,
        check_kib as f64 / 1024.0
    );
    let mut v = score("aide", &found, &truth);
    v["baseline_s"] = json!(init_s);
    v["check_s"] = json!(check_s);
    v["check_peak_rss_mib"] = json!(check_kib as f64 / 1024.0);
    Ok(Some(v))
}

/// `puppet apply --noop` with one file resource per file: `ensure => file`, its mode, and its
/// content from a pristine copy (`source`, compared by checksum).
fn puppet(dir: &Path, tree: &Path, paths: &[PathBuf]) -> anyhow::Result<Option<Value>> {
    use std::fmt::Write as _;
    if Command::new("puppet").arg("--version").output().is_err() {
        println!("peers: puppet is not installed (apt-get install puppet): skipped");
        return Ok(None);
    }
    let copies = reference_copy(tree, paths, &dir.join("reference"))?;
    let mut site = String::new();
    for (p, copy) in paths.iter().zip(&copies) {
        writeln!(
            site,
            "file {{ '{}': ensure => file, mode => '0644', source => '{}' }}",
            p.display(),
            copy.display()
        )?;
    }
    let manifest = dir.join("site.pp");
    std::fs::write(&manifest, site)?;
    let truth = change(paths)?;
    let (secs, kib, report) = timed(
        Command::new("puppet")
            .args(["apply", "--noop", "--color=false"])
            .arg(&manifest),
    )?;
    let found: BTreeSet<PathBuf> = report
        .lines()
        .filter(|l| l.contains("(noop)"))
        .filter_map(|l| l.split_once("File[").and_then(|(_, r)| r.split_once(']')))
        .map(|(p, _)| PathBuf::from(p))
        .collect();
    println!(
        "peers: puppet apply --noop: {secs:.1} s, {:.0} MiB",
        kib as f64 / 1024.0
    );
    let mut v = score("puppet", &found, &truth);
    v["run_s"] = json!(secs);
    v["peak_rss_mib"] = json!(kib as f64 / 1024.0);
    Ok(Some(v))
}

/// Copies each path of `tree` under `reference`, as the pristine state Puppet and CFEngine
/// compare against.
fn reference_copy(
    tree: &Path,
    paths: &[PathBuf],
    reference: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut copies = Vec::with_capacity(paths.len());
    for p in paths {
        let copy = reference.join(p.strip_prefix(tree)?);
        if let Some(parent) = copy.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(p, &copy)?;
        copies.push(copy);
    }
    Ok(copies)
}

/// `cf-agent --dry-run` on a policy with one files promise per file: its content copied from
/// a pristine copy (compared by digest) and its mode.
fn cfengine(dir: &Path, tree: &Path, paths: &[PathBuf]) -> anyhow::Result<Option<Value>> {
    use std::fmt::Write as _;
    if Command::new("cf-agent").arg("--version").output().is_err() {
        println!("peers: cf-agent is not installed (apt-get install cfengine3): skipped");
        return Ok(None);
    }
    let copies = reference_copy(tree, paths, &dir.join("reference"))?;
    let mut policy = String::from(
        "body common control { bundlesequence => { \"check\" }; }\n\
         body copy_from cp(from) { source => \"$(from)\"; compare => \"digest\"; }\n\
         body perms m(mode) { mode => \"$(mode)\"; rxdirs => \"false\"; }\n\
         bundle agent check {\n  files:\n",
    );
    for (p, copy) in paths.iter().zip(&copies) {
        writeln!(
            policy,
            "    \"{}\" copy_from => cp(\"{}\"), perms => m(\"644\");",
            p.display(),
            copy.display()
        )?;
    }
    policy.push_str("}\n");
    let file = dir.join("policy.cf");
    std::fs::write(&file, policy)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let truth = change(paths)?;
    let (secs, kib, report) = timed(
        Command::new("cf-agent")
            .args(["--dry-run", "-K", "-f"])
            .arg(&file),
    )?;
    let found: BTreeSet<PathBuf> = report
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("warning: Should "))
        .filter_map(|l| l.split('\'').nth(1))
        .map(PathBuf::from)
        .collect();
    println!(
        "peers: cf-agent --dry-run: {secs:.1} s, {:.0} MiB",
        kib as f64 / 1024.0
    );
    let mut v = score("cfengine", &found, &truth);
    v["run_s"] = json!(secs);
    v["peak_rss_mib"] = json!(kib as f64 / 1024.0);
    Ok(Some(v))
}

async fn plumb(dir: &Path, tree: &Path, paths: &[PathBuf]) -> anyhow::Result<Value> {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("bench.yaml"),
        fixture::manifest_with(tree, paths, "    mode: \"0644\"\n")?,
    )?;
    let (_controller, url) = fixture::controller(&manifests, &dir.join("data"), &[])?;
    let agent = fixture::agent(&url, "bench", tree)?;
    fixture::wait_in_sync(&url, "bench", Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = fixture::memory(agent.pid())?;
    let cpu0 = fixture::cpu_time(agent.pid())?;
    let start = Instant::now();
    let truth = change(paths)?;
    let made = start.elapsed();
    let declared = |p: &Path| Path::new("/").join(p.strip_prefix(tree).unwrap_or(p));
    let want: BTreeSet<PathBuf> = truth.iter().map(|p| declared(p)).collect();
    let mut client = fixture::query(&url).await?;
    let found = loop {
        let drift = client
            .get_drift(v1::GetDriftRequest {
                hosts: vec!["bench".into()],
                ..Default::default()
            })
            .await?
            .into_inner();
        let found: BTreeSet<PathBuf> = drift
            .hosts
            .iter()
            .flat_map(|h| h.drift.iter())
            .filter_map(|d| d.resource.strip_prefix("file:").map(PathBuf::from))
            .collect();
        if want.is_subset(&found) || start.elapsed() > Duration::from_secs(30) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let all_seen = start.elapsed();
    let cpu = fixture::cpu_time(agent.pid())? - cpu0;
    println!(
        "peers: plumb: every change is drift {:.0} ms after the first was made (making them took {:.0} ms); agent at rest {:.1} MiB, {} ms CPU to observe them",
        all_seen.as_secs_f64() * 1e3,
        made.as_secs_f64() * 1e3,
        rest.rss as f64 / 1024.0,
        cpu.as_millis()
    );
    let mut v = score("plumb", &found, &want);
    v["all_drift_ms"] = json!(all_seen.as_secs_f64() * 1e3);
    v["agent_rest_rss_mib"] = json!(rest.rss as f64 / 1024.0);
    v["agent_cpu_ms"] = json!(cpu.as_millis() as u64);
    Ok(v)
}

pub(crate) async fn run(files: usize) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    {
        let tmp = tempfile::tempdir()?;
        let tree = tmp.path().join("tree");
        let paths = fixture::tree(&tree, files, 0)?;
        if let Some(v) = aide(tmp.path(), &tree, &paths)? {
            out.insert("aide".into(), v);
        }
    }
    {
        let tmp = tempfile::tempdir()?;
        let tree = tmp.path().join("tree");
        let paths = fixture::tree(&tree, files, 0)?;
        if let Some(v) = puppet(tmp.path(), &tree, &paths)? {
            out.insert("puppet".into(), v);
        }
    }
    {
        let tmp = tempfile::tempdir()?;
        let tree = tmp.path().join("tree");
        let paths = fixture::tree(&tree, files, 0)?;
        if let Some(v) = cfengine(tmp.path(), &tree, &paths)? {
            out.insert("cfengine".into(), v);
        }
    }
    let tmp = tempfile::tempdir()?;
    let tree = tmp.path().join("tree");
    let paths = fixture::tree(&tree, files, 0)?;
    out.insert("plumb".into(), plumb(tmp.path(), &tree, &paths).await?);
    Ok(json!({"files": files, "tools": out}))
}
