//! `loadgen etcd`: the same load shape against etcd through the `etcd-client` crate, so that
//! raftfs is measured beside its peer with the same concurrency, timing and report code (as
//! YCSB has one binding per store). etcd fsyncs its WAL before it acknowledges a put: the
//! same durability as a raftfs mutation.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use etcd_client::{Client, GetOptions};
use tokio::sync::Mutex;

use crate::report::{self, Report};

/// The etcd operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EtcdOp {
    Put,
    Get,
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct EtcdLoad {
    pub op: EtcdOp,
    pub clients: usize,
    pub ops: u64,
    pub endpoints: Vec<String>,
    pub serializable: bool,
    pub value_size: usize,
    pub progress: bool,
    /// TLS to etcd: its CA, and a client certificate and key (etcd's `--client-cert-auth`).
    pub tls: Option<EtcdTls>,
}

/// PEM bytes of etcd's CA and of the client's certificate and key.
#[derive(Clone)]
pub struct EtcdTls {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls").finish_non_exhaustive()
    }
}

fn connect_options(tls: Option<&EtcdTls>) -> Option<etcd_client::ConnectOptions> {
    tls.map(|t| {
        etcd_client::ConnectOptions::new().with_tls(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(&t.ca))
                .identity(etcd_client::Identity::from_pem(&t.cert, &t.key)),
        )
    })
}

struct Worker {
    client: Mutex<Client>,
    prefix: String,
    value: Vec<u8>,
    serializable: bool,
}

async fn workers(load: &EtcdLoad, prefix: &str) -> Result<Vec<Worker>> {
    let mut out = Vec::with_capacity(load.clients.max(1));
    for _ in 0..load.clients.max(1) {
        out.push(Worker {
            client: Mutex::new(
                Client::connect(load.endpoints.clone(), connect_options(load.tls.as_ref())).await?,
            ),
            prefix: prefix.to_owned(),
            value: vec![b'v'; load.value_size],
            serializable: load.serializable,
        });
    }
    Ok(out)
}

/// Runs the load and returns its report.
pub async fn run(load: EtcdLoad) -> Result<Report> {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let prefix = format!("loadgen/{run_id}/");
    let put = |w: Arc<Worker>, i: u64| async move {
        let key = format!("{}{i}", w.prefix);
        let mut c = w.client.lock().await;
        c.put(key, w.value.clone(), None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let report = match load.op {
        EtcdOp::Put => {
            report::run(
                "etcd",
                "put",
                workers(&load, &prefix).await?,
                load.ops,
                load.progress,
                put,
            )
            .await
        }
        EtcdOp::Get => {
            let prep = report::run(
                "etcd",
                "prepare",
                workers(&load, &prefix).await?,
                load.ops,
                false,
                put,
            )
            .await;
            if prep.errors > 0 {
                bail!(
                    "preparing keys failed: {}",
                    prep.first_error.unwrap_or_default()
                );
            }
            let name = if load.serializable {
                "get-serializable"
            } else {
                "get"
            };
            report::run(
                "etcd",
                name,
                workers(&load, &prefix).await?,
                load.ops,
                load.progress,
                |w: Arc<Worker>, i| async move {
                    let key = format!("{}{i}", w.prefix);
                    let opts = if w.serializable {
                        Some(GetOptions::new().with_serializable())
                    } else {
                        None
                    };
                    let mut c = w.client.lock().await;
                    let r = c.get(key, opts).await.map_err(|e| e.to_string())?;
                    if r.kvs().is_empty() {
                        Err("key not found".to_owned())
                    } else {
                        Ok(())
                    }
                },
            )
            .await
        }
    };
    Ok(report)
}
