//! The sockets a server serves on.

use std::net::{SocketAddr, TcpListener};

/// The sockets a server serves on, bound before it starts. Whoever starts the server may bind
/// them itself and hand them down (as systemd's socket activation, or `metactl local`, does):
/// then the ports are held from the moment they are chosen, and no other process can take
/// them before the server listens.
#[derive(Debug)]
pub struct Listeners {
    /// The server's gRPC ports, the advertised one first (`WireSecurity::ports` order).
    pub rpc: Vec<TcpListener>,
    /// `/metrics` (none when the server has no metrics address).
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds every address of `rpc` and, when given, `metrics`.
    pub fn bind(rpc: &[SocketAddr], metrics: Option<SocketAddr>) -> std::io::Result<Self> {
        Ok(Self {
            rpc: rpc
                .iter()
                .map(TcpListener::bind)
                .collect::<std::io::Result<_>>()?,
            metrics: metrics.map(TcpListener::bind).transpose()?,
        })
    }
}

impl Listeners {
    /// Every socket registered with the running tokio reactor: (RPC ports, metrics).
    #[allow(clippy::type_complexity)]
    pub fn into_tokio(
        self,
    ) -> std::io::Result<(
        Vec<tokio::net::TcpListener>,
        Option<tokio::net::TcpListener>,
    )> {
        Ok((
            self.rpc
                .into_iter()
                .map(tokio_listener)
                .collect::<std::io::Result<_>>()?,
            self.metrics.map(tokio_listener).transpose()?,
        ))
    }
}

/// `listener` registered with the running tokio reactor.
pub fn tokio_listener(listener: TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}
