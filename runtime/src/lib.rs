//! raftfs-runtime: what every raftfs server process (metaserver, blockserver) shares, written
//! once.
//!
//! - [`listeners`]: the sockets a server serves on, bound by the server or handed down by
//!   whoever started it (systemd, `metactl local`).
//! - [`shutdown`]: SIGINT / SIGTERM as a future, and the log subscriber.
//! - [`workers`]: background jobs with an owner: a name, a status an operator can read, and
//!   a stop that waits for them; [`metrics`]: those statuses as Prometheus metrics.
//! - [`clock`]: the clock the active's soft state runs on, the system's or a manual one
//!   (the fleet simulator's).
//! - [`simulation`]: the switch a deterministic simulation turns on (work inline, its clock
//!   and its seeded randomness).
//! - [`pool`]: a few threads of their own for long reads, apart from tokio's blocking pool.
//! - [`ports`]: a server's ports, each with its own protection, serving the same services,
//!   and the authentication every call passes there; [`tls`]: a node's certificates, the
//!   server side of its TLS ports and the dialer of its outgoing connections (DESIGN §9).

pub mod clock;
pub mod listeners;
pub mod metrics;
pub mod pool;
pub mod ports;
pub mod shutdown;
pub mod simulation;
pub mod tls;
pub mod ui;
pub mod workers;

pub use clock::{Clock, ManualClock};
pub use listeners::{Listeners, tokio_listener};
pub use metrics::WorkerMetrics;
pub use pool::{PoolError, ReadPool};
pub use ports::{Port, ServeError, WireSecurity, caller_of, serve_ports};
pub use shutdown::{init_tracing, process_user, signal, terminated};
pub use tls::{Dialer, TlsError, TlsFiles, TlsMaterial};
pub use workers::{Outcome, WorkerState, WorkerStatus, WorkerStatuses, Workers};
