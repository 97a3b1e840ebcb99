//! Listener and channel plumbing shared by PD and the storage nodes. It
//! sits below both `client` and `server`, so that PD's raft network, its
//! server and its client share the gRPC channel and message bound without
//! importing one another.

use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint};

use crate::error::{PdError, Result};

/// Largest gRPC message PD accepts: a route snapshot of many thousands of
/// regions is several MiB, above tonic's 4 MiB default.
pub const MAX_GRPC_MESSAGE: usize = 64 << 20;
/// Bound on opening a connection: below the client's per-attempt timeout,
/// so an unreachable member fails while the attempt can still try another.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Adds `http://` to a bare `host:port`.
pub fn endpoint_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A lazily connected gRPC channel to `addr`.
///
/// # Errors
///
/// `InvalidArgument` when the address is not a valid URI.
pub fn channel(addr: &str) -> Result<Channel> {
    let ep = Endpoint::from_shared(endpoint_url(addr))
        .map_err(|e| PdError::InvalidArgument(format!("bad PD address {addr:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    Ok(ep.connect_lazy())
}

/// Accepted connections with Nagle's algorithm off. tonic sets
/// `TCP_NODELAY` only on sockets it accepts itself; on connections handed
/// to it, small responses would otherwise wait for the peer's delayed ACK
/// (40 ms on Linux).
pub fn nodelay_incoming(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// A health probe for containers without a shell or curl: GETs
/// `http://host:port/path` and reports whether it answered 200 within two
/// seconds. `pd-server --probe URL` and `storenode --probe URL` exit with it.
pub fn probe(url: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (hostport, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let Some(addr) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let timeout = Duration::from_secs(2);
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Serves a gRPC router on `listener` until `shutdown` turns true, then
/// drains. A server error is logged: the process keeps its other services.
pub async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = router.serve_with_incoming_shutdown(nodelay_incoming(listener), stop).await {
        tracing::error!(error = %e, "gRPC server failed");
    }
}

/// Serves an HTTP router on `listener` (Nagle off) until `shutdown` turns
/// true.
pub async fn serve_http(router: axum::Router, listener: TcpListener, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
