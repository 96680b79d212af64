//! Reloads the manifest set when a manifest file, a file one of them reads (`source:`), or the
//! directory itself changes (a symlink swap, as Kubernetes does with ConfigMaps, or a rename),
//! or when asked (SIGHUP). A bad set is rejected by the fleet, which keeps the last good one in
//! force; a set equal to the one in force is not news.
//!
//! Other changes are not reloads: a data directory inside the manifest directory, or next to
//! it, once made the controller reload several times a second, forever.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Command, FleetHandle};
use crate::manifest::Diagnostic;
use crate::manifest::load::{Loaded, load, source_of};

/// Changes within this window are reloaded once: an editor's save or a `git checkout` is
/// several events.
const SETTLE: Duration = Duration::from_millis(150);
/// A reload still reading after this long is given up on (the last good set stays in force);
/// no other reload starts until it has finished.
pub(super) const RELOAD_DEADLINE: Duration = Duration::from_secs(30);

/// Which changed paths concern the manifests: the directory, its own entries (manifest files,
/// Kubernetes' `..data`, folders), and the sources the last load read, as named and as resolved.
#[derive(Debug)]
struct Relevance {
    dir: PathBuf,
    sources: BTreeSet<PathBuf>,
}

impl Relevance {
    fn concerns(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.dir) else {
            return false; // the parent directory's other entries
        };
        rel.components().count() <= 1 || self.sources.iter().any(|s| s.starts_with(rel))
    }

    fn learn(&mut self, sources: &[PathBuf]) {
        let canonical_dir = std::fs::canonicalize(&self.dir).ok();
        self.sources = sources
            .iter()
            .flat_map(|s| {
                let resolved = std::fs::canonicalize(self.dir.join(s))
                    .ok()
                    .zip(canonical_dir.as_ref())
                    .and_then(|(full, dir)| full.strip_prefix(dir).ok().map(Path::to_path_buf));
                [Some(s.clone()), resolved]
            })
            .flatten()
            .collect();
    }
}

/// Starts reloading; stops with `shutdown`.
pub(crate) fn watch(
    dir: PathBuf,
    fleet: FleetHandle,
    shutdown: CancellationToken,
    reload_now: Arc<Notify>,
    sources: &[PathBuf],
) -> anyhow::Result<()> {
    let relevance = Arc::new(Mutex::new(Relevance {
        dir: dir.clone(),
        sources: BTreeSet::new(),
    }));
    relevance
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .learn(sources);
    // One pending signal is enough: a full queue already means "reload". The flag says whether
    // the directory itself was touched, so its watch must be re-armed.
    let (tx, mut rx) = mpsc::channel::<bool>(1);
    let this = dir.clone();
    let judge = relevance.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let (relevant, itself) = match &res {
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => (false, false),
            // Lost events: anything may have changed.
            Ok(ev) if ev.need_rescan() => (true, true),
            Ok(ev) => {
                let judge = judge.lock().unwrap_or_else(PoisonError::into_inner);
                (
                    ev.paths.iter().any(|p| judge.concerns(p)),
                    ev.paths.iter().any(|p| p == &this),
                )
            }
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
        // A load that overran its deadline, still reading.
        let mut overrun: Option<JoinHandle<(Loaded, String)>> = None;
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
            let task = match overrun.take() {
                Some(stuck) if !stuck.is_finished() => stuck,
                _ => {
                    let d = dir.clone();
                    tokio::task::spawn_blocking(move || (load(&d), source_of(&d)))
                }
            };
            let (result, source) = match tokio::time::timeout(RELOAD_DEADLINE, task).await {
                Ok(Ok((loaded, source))) => {
                    relevance
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .learn(&loaded.sources);
                    (loaded.result, source)
                }
                Ok(Err(_)) => return, // the runtime is shutting down
                Err(_) => {
                    tracing::error!(dir = %dir.display(), "reloading the manifests did not finish within {RELOAD_DEADLINE:?}; the last good set stays in force");
                    (
                        Err(vec![Diagnostic {
                            file: dir.display().to_string(),
                            line: None,
                            column: None,
                            message: format!(
                                "reading the manifest directory did not finish within {}s",
                                RELOAD_DEADLINE.as_secs()
                            ),
                            hint: Some(
                                "is a file system under it hung? the next change or SIGHUP tries again once the read ends"
                                    .into(),
                            ),
                        }]),
                        dir.display().to_string(),
                    )
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_manifest_files_their_sources_and_the_directory_concern_a_reload() {
        let r = Relevance {
            dir: "/srv/manifests".into(),
            sources: ["files/nginx.conf".into(), "deep/er/app.conf".into()].into(),
        };
        for yes in [
            "/srv/manifests",
            "/srv/manifests/web.yaml",
            "/srv/manifests/..data",
            "/srv/manifests/files",
            "/srv/manifests/files/nginx.conf",
            "/srv/manifests/deep/er",
        ] {
            assert!(r.concerns(Path::new(yes)), "{yes}");
        }
        for no in [
            "/srv/data",
            "/srv/data/plumb.db-wal",
            "/srv/manifests/data/plumb.db-wal",
            "/srv/manifests/files/other.conf",
            "/srv/other.yaml",
        ] {
            assert!(!r.concerns(Path::new(no)), "{no}");
        }
    }
}
