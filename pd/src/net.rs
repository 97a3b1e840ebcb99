//! Listener plumbing shared by PD and the storage nodes.

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

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
