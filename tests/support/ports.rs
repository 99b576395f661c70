//! Loopback ports for processes a test starts on a port it names (`BIND_ADDR`, redis-server,
//! nginx).
//!
//! Binding port 0 and releasing it is not enough: the kernel hands out the same range
//! (`net.ipv4.ip_local_port_range`, 32768–60999 by default) for every outgoing connection and
//! every `bind(0)`, so between the release and the service's own bind another test's connection
//! can take the port ("Address already in use", seen once in CI). Ports here come from below
//! that range, where the kernel never picks one by itself, and no two calls in one process
//! return the same port.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The first port handed out; below it sit well-known services (Redis' 6379, nginx' 8080…).
const LOW: u32 = 10_000;
/// One past the last: the start of Linux's default ephemeral range.
const HIGH: u32 = 32_768;

/// `n` distinct loopback ports, each free when it was checked.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// A loopback port that was free when checked and that the kernel does not hand out on its
/// own. Processes start at different places (their PID), so test binaries running side by side
/// rarely probe the same ports; a port in use is skipped.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = HIGH - LOW;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + step) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {HIGH}");
}
