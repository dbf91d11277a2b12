//! systemd readiness through `faas_daemons::notify`: a real unix datagram socket, named by
//! `NOTIFY_SOCKET` as systemd names it, receives `READY=1` and `STOPPING=1`. Its own test
//! binary with a single test, because it sets the process environment.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_and_stopping_reach_the_notify_socket_and_a_missing_one_is_not_fatal() {
    let dir = std::env::temp_dir().join(format!("faas-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Edition 2021: set_var is safe; this binary runs no other test that reads the environment.
    std::env::set_var(faas_daemons::notify::NOTIFY_SOCKET, &path);
    faas_daemons::notify::notify_ready();
    assert_eq!(recv(&server), "READY=1\n");
    faas_daemons::notify::notify_stopping();
    assert_eq!(recv(&server), "STOPPING=1\n");
    // A socket that went away is logged, not a panic; nothing is sent anywhere.
    std::env::set_var(faas_daemons::notify::NOTIFY_SOCKET, dir.join("gone.sock"));
    faas_daemons::notify::notify_ready();
    // Unset, the calls do nothing.
    std::env::remove_var(faas_daemons::notify::NOTIFY_SOCKET);
    faas_daemons::notify::notify_ready();
    let _ = std::fs::remove_dir_all(&dir);
}
