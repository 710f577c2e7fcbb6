//! The sockets a server serves on.

use std::net::{SocketAddr, TcpListener};

/// The sockets a server serves on, bound before it starts. Whoever starts the server may bind
/// them itself and hand them down (as systemd's socket activation, or `metactl local`, does):
/// then the ports are held from the moment they are chosen, and no other process can take
/// them before the server listens.
#[derive(Debug)]
pub struct Listeners {
    /// The server's gRPC services.
    pub rpc: TcpListener,
    /// `/metrics` (none when the server has no metrics address).
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds `rpc` and, when given, `metrics`.
    pub fn bind(rpc: SocketAddr, metrics: Option<SocketAddr>) -> std::io::Result<Self> {
        Ok(Self {
            rpc: TcpListener::bind(rpc)?,
            metrics: metrics.map(TcpListener::bind).transpose()?,
        })
    }
}

impl Listeners {
    /// Both sockets registered with the running tokio reactor: (RPC, metrics).
    pub fn into_tokio(
        self,
    ) -> std::io::Result<(tokio::net::TcpListener, Option<tokio::net::TcpListener>)> {
        Ok((
            tokio_listener(self.rpc)?,
            self.metrics.map(tokio_listener).transpose()?,
        ))
    }
}

/// `listener` registered with the running tokio reactor.
pub fn tokio_listener(listener: TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}
