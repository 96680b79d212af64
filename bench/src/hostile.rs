//! A hostile host against the fleet: 1,000 simulated agents make ordinary changes at a steady
//! rate, first alone, then while one real agent's exclusive directory churns: 100,000 entries
//! created and removed again, over and over. Reported: the others' detection latency in both
//! spells, side by side, the controller's CPU, and what the hostile host's drift looked like
//! (one item with a count, not 100,000). Between the churn unwatched and the churn watched by
//! an agent of the measured controller, a spell with that agent reporting to another
//! controller tells the machine's load apart from the hostile stream's cost to the fleet.
//!
//! The churn runs on this machine's two cores with the controller, the load generator and the
//! real agent: the figures are an upper bound on what the churn costs the fleet.

use std::path::Path;
use std::time::{Duration, Instant};

use plumb_proto::v1;
use serde_json::{Value, json};

use crate::fixture;
use crate::scale::{self, SimulatedFleet};

pub(crate) async fn run(
    agents: usize,
    entries: usize,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Value> {
    let files = 10;
    let tmp = tempfile::tempdir()?;
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("load.yaml"), scale::manifest(files))?;
    std::fs::write(
        manifests.join("churn.yaml"),
        "name: churn\nhosts: [\"churn\"]\nfiles:\n  /etc/churn.d:\n    exclusive: true\n",
    )?;
    let mut fleet = SimulatedFleet::start(
        &manifests,
        &tmp.path().join("data"),
        agents,
        1,
        files,
        &Default::default(),
    )
    .await?;
    println!(
        "hostile: {agents} simulated agents in sync after {:.1} s",
        fleet.ramp.as_secs_f64()
    );

    let alone = fleet.changes(rate, duration).await?;
    report("alone", &alone, rate);

    // The hostile host: a real agent, its exclusive directory churning.
    let root = tmp.path().join("churn-root");
    let dir = root.join("etc/churn.d");
    std::fs::create_dir_all(&dir)?;
    // On a real fleet the hostile host is another machine: here its churn and its agent run
    // at the lowest priority, and a spell with the churn but no agent shows what the shared
    // cores alone cost, so that the difference is what the hostile host costs the controller.
    let rounds_file = tmp.path().join("rounds");
    let _churner = niced(
        std::process::Command::new(std::env::current_exe()?)
            .args(["churn", "--entries", &entries.to_string(), "--dir"])
            .arg(&dir)
            .arg("--rounds")
            .arg(&rounds_file),
    )?;
    let machine = fleet.changes(rate, duration).await?;
    report("churn on this machine, not watched", &machine, rate);

    // The same agent watching the churn, but reporting to another controller (at the lowest
    // priority too): the machine is as loaded as in the next spell, while the measured
    // controller hears nothing of the hostile host. What the next spell adds to this one is
    // what the hostile stream costs the controller the others share.
    let elsewhere_manifests = tmp.path().join("elsewhere-manifests");
    std::fs::create_dir_all(&elsewhere_manifests)?;
    std::fs::copy(
        manifests.join("churn.yaml"),
        elsewhere_manifests.join("churn.yaml"),
    )?;
    let (elsewhere, elsewhere_url) = fixture::controller(
        &elsewhere_manifests,
        &tmp.path().join("elsewhere-data"),
        &[],
    )?;
    let reniced = std::process::Command::new("renice")
        .args(["-n", "19", "-p", &elsewhere.pid().to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(
        reniced.success(),
        "renice of the second controller failed: {reniced}"
    );
    let mut elsewhere_client = fixture::query(&elsewhere_url).await?;
    let agent_elsewhere = churn_agent(&elsewhere_url, &root)?;
    wait_for_connected(&mut elsewhere_client, "churn").await?;
    let apart = fleet.changes(rate, duration).await?;
    report("churn watched, its agent reporting elsewhere", &apart, rate);
    drop(agent_elsewhere);
    drop(elsewhere);

    let _agent = churn_agent(&fleet.url, &root)?;
    wait_for_connected(&mut fleet.client, "churn").await?;
    let events_before = events_of(&mut fleet.client, "churn").await?;
    // The hostile host's drift, while it churns: never more than one item.
    let watched = Instant::now();
    let mut most_items = 0usize;
    while watched.elapsed() < Duration::from_secs(3) {
        most_items = most_items.max(drift_items(&mut fleet.client, "churn").await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let churning = fleet.changes(rate, duration).await?;
    most_items = most_items.max(drift_items(&mut fleet.client, "churn").await?);
    let churn_events = events_of(&mut fleet.client, "churn").await? - events_before;
    report("churn watched by its agent", &churning, rate);
    let churned: u64 = std::fs::read_to_string(&rounds_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    println!(
        "hostile: the churning host went through {churned} rounds of {entries} entries created and removed; its drift held at most {most_items} item(s); it cost {churn_events} events"
    );
    let spell = |c: &scale::Changes| {
        json!({
            "changes": c.total, "detection_p50_ms": c.q(0.5), "detection_p99_ms": c.q(0.99),
            "detection_max_ms": c.q(1.0), "unseen": c.unseen, "controller_cpu_percent": c.cpu_percent,
        })
    };
    Ok(json!({
        "agents": agents, "entries": entries, "changes_per_s": rate,
        "alone": spell(&alone), "churn_not_watched": spell(&machine),
        "churn_watched_elsewhere": spell(&apart), "churn_watched": spell(&churning),
        "churn_rounds": churned, "churning_host_most_drift_items": most_items,
        "churning_host_events": churn_events,
    }))
}

fn report(what: &str, c: &scale::Changes, rate: u32) {
    println!(
        "hostile: {what}: {} changes at {rate}/s: detection p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} unseen; controller CPU {:.0}%",
        c.total,
        c.q(0.5),
        c.q(0.99),
        c.q(1.0),
        c.unseen,
        c.cpu_percent
    );
}

async fn host(
    client: &mut v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    id: &str,
) -> anyhow::Result<Option<v1::HostDrift>> {
    let resp = client
        .get_drift(v1::GetDriftRequest {
            hosts: vec![id.to_owned()],
            ..Default::default()
        })
        .await;
    Ok(resp
        .ok()
        .and_then(|r| r.into_inner().hosts.into_iter().next()))
}

async fn drift_items(
    client: &mut v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    id: &str,
) -> anyhow::Result<usize> {
    Ok(host(client, id).await?.map_or(0, |h| h.drift.len()))
}

/// Waits until `id` is connected and evaluated (in sync or drifted: its directory churns).
async fn wait_for_connected(
    client: &mut v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    id: &str,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let evaluated = [
        v1::HostStatus::InSync as i32,
        v1::HostStatus::Drifted as i32,
    ];
    loop {
        let status = host(client, id)
            .await?
            .and_then(|h| h.host)
            .map(|h| h.status);
        if status.is_some_and(|s| evaluated.contains(&s)) {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "{id} not evaluated after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many events the log holds for `id` (at most 100,000).
async fn events_of(
    client: &mut v1::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    id: &str,
) -> anyhow::Result<usize> {
    Ok(client
        .get_history(v1::GetHistoryRequest {
            host_id: id.to_owned(),
            limit: 100_000,
            ..Default::default()
        })
        .await?
        .into_inner()
        .events
        .len())
}

/// The hostile host's agent, at the lowest priority, reporting to `url`.
fn churn_agent(url: &str, root: &Path) -> anyhow::Result<fixture::Proc> {
    niced(
        std::process::Command::new(fixture::bin("plumb-agent")?)
            .args(["run", "--controller", url, "--host-id", "churn", "--root"])
            .arg(root),
    )
}

/// `command` at the lowest CPU priority, its output discarded.
fn niced(command: &mut std::process::Command) -> anyhow::Result<fixture::Proc> {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
    let child = std::process::Command::new("nice")
        .args(["-n", "19"])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok(fixture::Proc { child })
}

/// `plumb-bench churn`: creates `entries` files in `dir` and removes them again, over and
/// over until killed, writing the rounds done to `rounds`.
pub(crate) fn churn(dir: &Path, entries: usize, rounds: &Path) -> anyhow::Result<()> {
    for round in 1u64.. {
        for i in 0..entries {
            std::fs::File::create(dir.join(format!("e{i:06}")))?;
        }
        for i in 0..entries {
            std::fs::remove_file(dir.join(format!("e{i:06}")))?;
        }
        std::fs::write(rounds, round.to_string())?;
    }
    Ok(())
}
