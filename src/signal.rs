//! The process's stop signals: Ctrl-C (SIGINT) or SIGTERM (systemd, `docker stop`), waited for
//! in one place by every role and by `sluice stream`.

use tokio_util::sync::CancellationToken;

/// Resolves at the first SIGINT or SIGTERM.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Cancels `shutdown` at the first stop signal, saying `what` happens next.
pub fn cancel_on_signal(shutdown: &CancellationToken, what: &'static str) {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        terminated().await;
        tracing::info!("{what}");
        shutdown.cancel();
    });
}
