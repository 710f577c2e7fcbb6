//! Wiring: the nameservices' clients, the mount table and its poller, the services on one
//! port, until shutdown.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use raftfs_core::identity::PortPolicy;
use raftfs_proto::admin_server::AdminServer;
use raftfs_proto::namespace_server::NamespaceServer;
use raftfs_runtime::{Outcome, Port, Workers};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::{Router, RouterService};
use crate::table::Table;
use crate::upstreams::Upstreams;

/// How long the table poller may take to stop.
const WORKER_GRACE: Duration = Duration::from_secs(2);

/// Why a router stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Client(#[from] raftfs_client::ClientError),
    #[error(transparent)]
    Serve(#[from] raftfs_runtime::ServeError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds the listen address and the metrics address, if any.
pub fn listeners(config: &Config) -> std::io::Result<(TcpListener, Option<TcpListener>)> {
    Ok((
        TcpListener::bind(config.listen_addr)?,
        config.metrics_addr.map(TcpListener::bind).transpose()?,
    ))
}

/// Serves on `listener` (bound to `config.listen_addr`, here or by whoever started the
/// router) until `shutdown` resolves. The port is plain and in simple mode: each caller's
/// claimed name is forwarded as its own. (Behind TLS a router needs HDFS's proxy-user rule,
/// which the wire-security design does not have yet.)
pub async fn serve(
    config: Config,
    (listener, metrics_listener): (TcpListener, Option<TcpListener>),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    if config.debug_wrong_state_id {
        tracing::warn!(
            "debug-wrong-state-id: this router forwards older state IDs than its clients saw"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let upstreams = Upstreams::new(&config)?;
    let table = Table::new(
        config.mount_table.clone(),
        upstreams.table_reader(&config)?,
        metrics.clone(),
    );
    let router = Arc::new(Router {
        upstreams,
        table,
        metrics: metrics.clone(),
        wrong_state_id: config.debug_wrong_state_id,
    });
    let mut workers = Workers::new();
    let r = router.clone();
    workers.spawn_periodic("mount-table", config.table_poll(), move || {
        let r = r.clone();
        async move {
            let table = r.table.refresh(0).await?;
            Ok::<_, crate::error::RouterError>(Outcome::Done {
                items: table.len() as u64,
            })
        }
    });
    let service = RouterService::new(router);
    let routes = tonic::service::Routes::new(NamespaceServer::new(service.clone()))
        .add_service(AdminServer::new(service));
    let port = Port {
        addr: config.listen_addr,
        policy: PortPolicy::Plain,
        simple: true,
    };
    tracing::info!(addr = %config.listen_addr, "router serving");
    let listener = raftfs_runtime::tokio_listener(listener)?;
    // One shutdown for both servers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_task = match metrics_listener {
        Some(l) => {
            let l = raftfs_runtime::tokio_listener(l)?;
            let statuses = workers.statuses();
            let stop = until(stopped.clone());
            Some(tokio::spawn(crate::metrics::serve(
                l, metrics, statuses, stop,
            )))
        }
        None => None,
    };
    let result =
        raftfs_runtime::serve_ports(routes, vec![(listener, port)], None, &[], until(stopped))
            .await;
    workers.stop(WORKER_GRACE).await;
    if let Some(t) = metrics_task
        && let Ok(Err(e)) = t.await
    {
        tracing::warn!(error = %e, "metrics server");
    }
    tracing::info!("router stopped");
    Ok(result?)
}
