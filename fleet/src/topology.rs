//! The simulated fleet's shape: datacenters, racks, servers, and what each resource moves a
//! second.

use raftfs_core::id::BlockServerId;
use serde::Serialize;

/// Bytes a second of each resource a rebuild uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// A server's disks, read (sources) and written (targets), each way.
    pub disk: f64,
    /// A server's network interface, each way.
    pub nic: f64,
    /// A rack's uplink to the rest of its datacenter, each way.
    pub rack_uplink: f64,
    /// The link between two datacenters, each way.
    pub datacenter_link: f64,
}

impl Default for Rates {
    /// A datacenter of today: 200 MB/s of disk and 10 GbE per server, 100 Gb/s out of a rack,
    /// 100 Gb/s between datacenters.
    fn default() -> Self {
        Self {
            disk: 200e6,
            nic: 1.25e9,
            rack_uplink: 12.5e9,
            datacenter_link: 12.5e9,
        }
    }
}

/// Where every server is.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub datacenters: Vec<String>,
    /// Rack names, and the datacenter (index) of each.
    pub racks: Vec<(String, usize)>,
    /// The rack (index) of each server; server `i` is blockserver `i + 1`.
    pub servers: Vec<usize>,
    /// Bytes each server holds.
    pub capacity: u64,
}

impl Topology {
    /// `servers` servers spread evenly over `racks` racks (`r1`...), the racks evenly over
    /// `datacenters` datacenters (`dc1`...): rack `r` in datacenter `r * dcs / racks`.
    pub fn even(datacenters: usize, racks: usize, servers: usize, capacity: u64) -> Self {
        let datacenters = datacenters.max(1);
        let racks = racks.max(1);
        Self {
            datacenters: (1..=datacenters).map(|d| format!("dc{d}")).collect(),
            racks: (0..racks)
                .map(|r| (format!("r{}", r + 1), r * datacenters / racks))
                .collect(),
            servers: (0..servers).map(|s| s * racks / servers.max(1)).collect(),
            capacity,
        }
    }

    /// The blockserver id of server `s`.
    pub fn id(s: u32) -> BlockServerId {
        BlockServerId(u64::from(s) + 1)
    }

    /// The server of blockserver `id`.
    pub fn index(id: BlockServerId) -> Option<u32> {
        u32::try_from(id.0.checked_sub(1)?).ok()
    }

    /// The rack name of server `s`.
    pub fn rack_name(&self, s: u32) -> &str {
        &self.racks[self.servers[s as usize]].0
    }

    /// The rack (index) named `name`.
    pub fn rack_named(&self, name: &str) -> Option<usize> {
        self.racks.iter().position(|(r, _)| r == name)
    }

    /// The datacenter (index) of rack `r`.
    pub fn datacenter_of(&self, rack: usize) -> usize {
        self.racks[rack].1
    }

    /// The servers of rack `r`.
    pub fn servers_of(&self, rack: usize) -> impl Iterator<Item = u32> + '_ {
        self.servers
            .iter()
            .enumerate()
            .filter(move |(_, r)| **r == rack)
            .map(|(s, _)| s as u32)
    }

    /// Every rack with its datacenter's name, as the throttle settings map them.
    pub fn rack_datacenters(&self) -> Vec<(String, String)> {
        self.racks
            .iter()
            .map(|(r, d)| (r.clone(), self.datacenters[*d].clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_fleet_spreads_servers_over_racks_and_racks_over_datacenters() {
        let t = Topology::even(2, 200, 10_000, 1 << 40);
        assert_eq!(t.servers_of(0).count(), 50);
        assert_eq!(t.servers_of(199).count(), 50);
        assert_eq!(t.racks.iter().filter(|(_, d)| *d == 1).count(), 100);
        assert_eq!(t.rack_name(9_999), "r200");
        assert_eq!(Topology::index(Topology::id(7)), Some(7));
        let bench = Topology::even(1, 3, 12, 1 << 40);
        assert_eq!(bench.servers_of(1).collect::<Vec<_>>(), [4, 5, 6, 7]);
    }
}
