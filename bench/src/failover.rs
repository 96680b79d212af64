//! Failover: N simulated agents spread over K controllers on one PostgreSQL store, all in
//! sync; then the first controller is killed with SIGKILL. Measured: from the kill to each of
//! its agents' snapshots acknowledged by the controller it moved to (stored there, so in
//! sync), and to a survivor answering every host in sync with none held by the dead one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixture;
use crate::scale::{SimulatedFleet, Site, manifest};
use crate::store::Store;

pub(crate) async fn run(n: usize, files: usize, k: usize, store: &Store) -> anyhow::Result<Value> {
    anyhow::ensure!(k >= 2, "failover needs at least two controllers");
    let tmp = tempfile::tempdir()?;
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("load.yaml"), manifest(files))?;
    let url = store
        .fresh()
        .ok_or_else(|| anyhow::anyhow!("failover needs a PostgreSQL store"))?;
    let site = Site {
        store: Some(url.clone()),
        controllers: k,
        extra: Vec::new(),
    };
    let mut fleet =
        SimulatedFleet::start(&manifests, &tmp.path().join("data"), n, 1, files, &site).await?;
    let moving = (0..n).filter(|i| i % k == 0).count();
    let mut survivor = fixture::query(&fleet.urls[1]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Agent 0 started on the first controller: its host's owner is that controller's id.
    let dead = store
        .text(&url, "SELECT owner FROM hosts WHERE host_id = 'load-00000'")
        .ok_or_else(|| anyhow::anyhow!("cannot read the first controller's id"))?;
    let killed = Instant::now();
    fleet.controllers[0].child.kill()?;
    fleet.controllers[0].child.wait()?;
    let deadline = killed + Duration::from_secs(300);
    loop {
        if fleet.resynced.lock().expect("lock").len() >= moving {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {moving} agents resynced within 5 min",
            fleet.resynced.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut moved: Vec<f64> = fleet
        .resynced
        .lock()
        .expect("lock")
        .iter()
        .map(|t| t.duration_since(killed).as_secs_f64())
        .collect();
    moved.sort_by(f64::total_cmp);
    // The survivor's word: every host in sync, none of them held by the dead controller (its
    // hosts' stored states say in sync too until they are claimed or released).
    let held_by_dead = |store: &Store| {
        store.count(
            &url,
            &format!("SELECT count(*) FROM hosts WHERE owner IS NULL OR owner = '{dead}'"),
        )
    };
    let answered = loop {
        let hosts = survivor
            .list_hosts(plumb_proto::v1::ListHostsRequest::default())
            .await?
            .into_inner();
        let in_sync = hosts
            .hosts
            .iter()
            .filter(|h| h.status == plumb_proto::v1::HostStatus::InSync as i32)
            .count();
        if in_sync >= n && held_by_dead(store) == Some(0) {
            break killed.elapsed().as_secs_f64();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the survivor never said all {n} in sync"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let q = |x| fixture::quantile(&moved, x);
    println!(
        "failover: {n} agents x {files} files on {k} controllers, {moving} on the one killed: \
         resynced elsewhere p50 {:.2} s, p99 {:.2} s, all {:.2} s; a survivor says all in sync, none held by the dead, after {answered:.2} s",
        q(0.5),
        q(0.99),
        q(1.0),
    );
    Ok(json!({
        "agents": n,
        "files_per_agent": files,
        "controllers": k,
        "moved": moving,
        "resynced_p50_s": q(0.5),
        "resynced_p99_s": q(0.99),
        "resynced_all_s": q(1.0),
        "survivor_all_in_sync_s": answered,
    }))
}
