//! Reloads the manifest set when anything in its directory changes, when the directory itself
//! is replaced (a symlink swap, as Kubernetes does with ConfigMaps, or a rename), or when asked
//! (SIGHUP). A bad set is rejected by the fleet, which keeps the last good one in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::fleet::{Command, FleetHandle};
use crate::manifest::load::{load_dir, source_of};

/// Changes within this window are reloaded once: an editor's save or a `git checkout` is
/// several events.
const SETTLE: Duration = Duration::from_millis(150);

/// Starts reloading; stops with `shutdown`.
pub(crate) fn watch(
    dir: PathBuf,
    fleet: FleetHandle,
    shutdown: CancellationToken,
    reload_now: Arc<Notify>,
) -> anyhow::Result<()> {
    // One pending signal is enough: a full queue already means "reload". The flag says whether
    // the directory itself was touched, so its watch must be re-armed.
    let (tx, mut rx) = mpsc::channel::<bool>(1);
    let this = dir.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let (relevant, itself) = match &res {
            Ok(ev) => (
                !matches!(ev.kind, notify::EventKind::Access(_)),
                ev.paths.iter().any(|p| p == &this),
            ),
            Err(_) => (true, true),
        };
        if relevant {
            // A pending plain reload is upgraded by a later re-arm only if there is room;
            // re-arming is also done on every reload below, so nothing is lost.
            let _ = tx.try_send(itself);
        }
    })?;
    arm(&mut watcher, &dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The folder that holds the manifest directory: sees the directory being swapped.
        watcher.watch(parent, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = reload_now.notified() => tracing::info!("manifest reload requested"),
                got = rx.recv() => if got.is_none() { return },
            }
            // Let the burst settle, then swallow what it queued.
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            // The directory may be a new one now (swapped symlink, renamed folder): watch it.
            if let Err(e) = arm(&mut watcher, &dir) {
                tracing::error!(dir = %dir.display(), error = %e, "cannot watch the manifest directory");
            }
            let d = dir.clone();
            let Ok((result, source)) =
                tokio::task::spawn_blocking(move || (load_dir(&d), source_of(&d))).await
            else {
                return;
            };
            if fleet
                .send(Command::Manifests { result, source })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(())
}

fn arm(watcher: &mut RecommendedWatcher, dir: &Path) -> notify::Result<()> {
    let _ = watcher.unwatch(dir);
    watcher.watch(dir, RecursiveMode::Recursive)
}
