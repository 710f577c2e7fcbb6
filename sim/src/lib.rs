//! In-process clusters of real metaservers (issue 21): the journal, the state machine, the
//! namespace and the services' logic of `raftfs-metaserver`, several members in one process,
//! their Raft messages carried by a [`net::Net`] that can partition, drop, delay, reorder and
//! duplicate them. For multi-node tests without ports, processes or wall-clock races.
//!
//! - [`net`]: the transport between members, and its faults.
//! - [`cluster`]: the members, started and stopped from their data directories, and a client
//!   that calls their services directly.
//! - [`maelstrom`]: a member as a Maelstrom `lin-kv` node (bin `maelstrom-node`), its Raft
//!   messages carried as Maelstrom messages; [`lin_kv`]: a Jepsen-style client of it that
//!   records the history.
//! - [`simulation`]: the same nodes on turmoil's simulated time and network, under faults
//!   drawn from a seed, their clients' history checked: a seed replays its run exactly.

// Without tokio's unstable cfg turmoil cannot seed tokio's own randomness (the first branch
// a `select!` polls), and a seed no longer replays its run (.cargo/config.toml sets it).
#[cfg(not(tokio_unstable))]
compile_error!(
    "raftfs-sim needs `--cfg tokio_unstable` (set by .cargo/config.toml; RUSTFLAGS in the \
     environment replaces it): without it a simulation is not reproducible"
);

pub mod cluster;
pub mod lin_kv;
pub mod maelstrom;
pub mod net;
pub mod simulation;

pub use cluster::{Cluster, SimClient, SimError};
pub use net::{Fault, Filter, Net};
