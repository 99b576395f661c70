//! Where the fake servers listen.

use std::net::SocketAddr;

use axum::serve::{Listener, ListenerExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connections the kernel may hold for a fake before it accepts them (Linux caps it at
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 1,024: when `examples/load`
/// started a thousand answers at once, the fake OpenAI's queue overflowed while the CPU was
/// busy, a few dozen SYNs were dropped (`nstat`: TcpExtListenOverflows), and those answers
/// waited ~0.5 s, until a pooled connection came free, where a real API would have accepted.
const BACKLOG: u32 = 4096;

/// A listener on 127.0.0.1:`port` (0: a free port) that accepts like a real API's servers: a
/// deep backlog, and `TCP_NODELAY` on every connection, so a small write (an SSE frame, the
/// end of a body) goes out at once, not after the client's delayed ACK (~40 ms with Nagle).
pub fn listen(port: u16) -> (SocketAddr, impl Listener<Io = TcpStream, Addr = SocketAddr>) {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("a loopback port for a fake");
    let listener = socket.listen(BACKLOG).expect("listening");
    let addr = listener.local_addr().expect("the listener's address");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    (addr, listener)
}
