//! systemd readiness (`sd_notify`): under `Type=notify` a unit counts as started only once the
//! daemon says `READY=1`, so units ordered after it (and `systemctl start`) wait until it
//! actually serves. Outside systemd (`NOTIFY_SOCKET` unset) every call here does nothing.
//!
//! The protocol (one datagram on the unix socket named by `NOTIFY_SOCKET`) is the `sd-notify`
//! crate's; this module only decides what a failure means. systemd names a path
//! (`/run/systemd/notify`); an abstract `@name`, which the crate does not speak, is logged as a
//! failure.

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells systemd the daemon is ready: call it once the listener is bound and Redis answered.
/// A failure is logged, never fatal: the daemon works the same, systemd just times out waiting.
pub fn notify_ready() {
    send_logged(NotifyState::Ready, "READY=1");
}

/// Tells systemd the daemon is shutting down (it then shows "deactivating").
pub fn notify_stopping() {
    send_logged(NotifyState::Stopping, "STOPPING=1");
}

fn send_logged(state: NotifyState<'_>, name: &str) {
    if std::env::var_os(NOTIFY_SOCKET).is_none_or(|s| s.is_empty()) {
        return;
    }
    match sd_notify::notify(&[state]) {
        Ok(()) => debug!(state = name, "notified systemd"),
        Err(e) => {
            warn!(event = "systemd_notify_failed", error = %e, state = name, "cannot notify systemd")
        }
    }
}
