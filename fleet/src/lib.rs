//! raftfs-fleet: the fleet simulator (issue 23).
//!
//! The redundancy scan, the scheduler, the registry and placement are deterministic logic
//! of the active; budgets are token buckets on each blockserver. This crate runs the real
//! code of all of them against simulated blockservers, far more than one machine could
//! start, on simulated time, seeded and reproducible: registrations, split full reports,
//! heartbeats with xmits and outcomes, rebuilds at the rates of the disks and links they
//! share, failures, budget changes.
//!
//! - [`topology`]: datacenters, racks, servers and the rates of their resources.
//! - [`namespace`]: the groups (where each internal block is) and the store the scan reads.
//! - [`load`]: how fast a rebuild moves, sharing disks, interfaces and links.
//! - [`fleet`]: the event loop around the real registry, scan, scheduler and budgets.
//! - [`record`]: what a run measured.
//! - [`calibration`]: the rebuild benchmark's cluster (`bench/rebuild.sh`) in simulation,
//!   to compare with the real system's figures.

pub mod calibration;
pub mod fleet;
pub mod load;
pub mod namespace;
pub mod record;
pub mod topology;

pub use fleet::{Bugs, Checks, Config, Fault, Fleet, GroupKind, Outcome};
pub use topology::{Rates, Topology};
