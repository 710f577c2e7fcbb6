//! Stopping on a signal, where logs go, and who the process runs as.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when [`signal`] resolved on SIGTERM.
static TERMINATED: AtomicBool = AtomicBool::new(false);

/// Whether the process was asked to stop by SIGTERM (a planned stop: `metactl local stop`,
/// a rolling restart, systemd), rather than SIGINT (Ctrl-C, or `local down` stopping a
/// whole cluster). A metaserver hands its leadership over only on the first.
pub fn terminated() -> bool {
    TERMINATED.load(Ordering::Acquire)
}

/// Resolves on SIGINT or SIGTERM: the server then stops accepting RPCs, stops its workers
/// and exits (a metaserver stopped by SIGTERM first hands its leadership over).
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => TERMINATED.store(true, Ordering::Release),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Installs the log subscriber servers use: `RUST_LOG`, else `default_filter`; to stderr,
/// coloured only on a terminal (a log file stays plain text).
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The name of the user this process runs as (`root` for uid 0), or its uid when the system
/// knows no name for it.
pub fn process_user() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}
