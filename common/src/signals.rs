//! Signals both daemons answer: SIGINT/SIGTERM stop, SIGHUP re-reads (manifests, a rescan).

/// SIGINT or SIGTERM cancels `token`.
pub async fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}

/// Each SIGHUP notifies `what` (reload the manifests, rescan everything): the configuration
/// is re-read without a restart.
pub fn notify_on_sighup(what: std::sync::Arc<tokio::sync::Notify>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP");
            what.notify_one();
        }
    });
}
