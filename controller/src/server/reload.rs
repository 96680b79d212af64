//! Reloads the manifest set when anything in its directory changes. A bad set is rejected by
//! the fleet, which keeps the last good one in force.

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Command, FleetHandle};
use crate::manifest::load::load_dir;

/// Changes within this window are reloaded once: an editor's save or a `git checkout` is
/// several events.
const SETTLE: Duration = Duration::from_millis(150);

/// Returns the watcher; dropping it stops reloading.
pub(crate) fn watch(
    dir: PathBuf,
    fleet: FleetHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<RecommendedWatcher> {
    // One pending signal is enough: a full queue already means "reload".
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let relevant = match &res {
            Ok(ev) => !matches!(ev.kind, notify::EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = rx.recv() => if got.is_none() { return },
            }
            // Let the burst settle, then swallow what it queued.
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let d = dir.clone();
            let Ok(result) = tokio::task::spawn_blocking(move || load_dir(&d)).await else {
                return;
            };
            if fleet.send(Command::Manifests(result)).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}
