//! systemd readiness (`sd_notify`): under `Type=notify` a unit counts as started only once the
//! daemon says `READY=1`, so units ordered after it (and `systemctl start`) wait until it
//! actually serves. Outside systemd (`NOTIFY_SOCKET` unset) every call here does nothing.
//!
//! The protocol is one datagram on the unix socket named by `NOTIFY_SOCKET`; a name starting with
//! `@` is a Linux abstract socket (the `@` stands for the leading NUL byte).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

use tracing::{debug, warn};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells systemd the daemon is ready: call it once the listener is bound and Redis answered.
/// A failure is logged, never fatal: the daemon works the same, systemd just times out waiting.
pub fn notify_ready() {
    send_logged("READY=1");
}

/// Tells systemd the daemon is shutting down (it then shows "deactivating").
pub fn notify_stopping() {
    send_logged("STOPPING=1");
}

fn send_logged(state: &str) {
    match notify(state) {
        Ok(true) => debug!(state, "notified systemd"),
        Ok(false) => {}
        Err(e) => warn!(error = %e, state, "cannot notify systemd"),
    }
}

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`; `Ok(false)` when it is not set.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the socket named `socket` (a path, or `@name` for an abstract socket).
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => send_abstract(&sock, name, state)?,
        None => sock.send_to(state.as_bytes(), socket)?,
    };
    if sent != state.len() {
        return Err(io::Error::other(format!(
            "short write to {}: {sent} of {} bytes",
            socket.to_string_lossy(),
            state.len()
        )));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], state: &str) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("faas-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ready_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("faas-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(notify_to(OsStr::new("/nonexistent/faas/notify.sock"), "READY=1").is_err());
    }
}
