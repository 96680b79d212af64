//! systemd integration for `Type=notify` units: readiness, a status line for `systemctl
//! status`, and the watchdog. Without `NOTIFY_SOCKET` (not started by systemd) every call is a
//! no-op, so the daemons call these unconditionally.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// Startup is complete; `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the status line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// When the unit has a watchdog (`WatchdogSec=`), feeds it at a third of its period for as
/// long as `alive()` answers true within that third. Once it does not, the watchdog is left to
/// expire and systemd restarts the service: a daemon that is running but stuck is not healthy.
pub fn watchdog<F, Fut>(alive: F, shutdown: CancellationToken)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 3).max(Duration::from_millis(10));
    tracing::info!(period = ?period, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match tokio::time::timeout(every, alive()).await {
                Ok(true) => send(&[NotifyState::Watchdog]),
                _ => tracing::error!("not answering; leaving the systemd watchdog to expire"),
            }
        }
    });
}
