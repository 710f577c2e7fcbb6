//! How fast a rebuild moves: the resources it uses (disks, network interfaces, rack uplinks,
//! links between datacenters), each shared evenly among the rebuilds using it.
//!
//! A fluid model: when a task starts a step, its rate is the lowest, over the resources it
//! uses, of the resource's rate divided by the tasks using it and by the bytes that resource
//! carries per byte rebuilt. It is recomputed at every step, so a task slows down as others
//! join and speeds up as they end. What the budgets allow is applied on top, by the real
//! token buckets.

use crate::topology::{Rates, Topology};

/// One resource a task uses, and the bytes it carries per byte rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A server's disks (the target writes, a source reads).
    Disk(u32),
    /// Into a server's network interface.
    NicIn(u32),
    /// Out of a server's network interface.
    NicOut(u32),
    /// Out of a rack, to the rest of its datacenter.
    RackOut(usize),
    /// Into a rack.
    RackIn(usize),
    /// From one datacenter to another.
    Link(usize, usize),
}

/// Users of every resource.
#[derive(Debug)]
pub struct Load {
    rates: Rates,
    disk: Vec<u32>,
    nic_in: Vec<u32>,
    nic_out: Vec<u32>,
    rack_out: Vec<u32>,
    rack_in: Vec<u32>,
    link: Vec<u32>,
    datacenters: usize,
}

impl Load {
    pub fn new(topology: &Topology, rates: Rates) -> Self {
        let (servers, racks, dcs) = (
            topology.servers.len(),
            topology.racks.len(),
            topology.datacenters.len(),
        );
        Self {
            rates,
            disk: vec![0; servers],
            nic_in: vec![0; servers],
            nic_out: vec![0; servers],
            rack_out: vec![0; racks],
            rack_in: vec![0; racks],
            link: vec![0; dcs * dcs],
            datacenters: dcs,
        }
    }

    fn users(&mut self, r: Resource) -> Option<&mut u32> {
        match r {
            Resource::Disk(s) => self.disk.get_mut(s as usize),
            Resource::NicIn(s) => self.nic_in.get_mut(s as usize),
            Resource::NicOut(s) => self.nic_out.get_mut(s as usize),
            Resource::RackOut(r) => self.rack_out.get_mut(r),
            Resource::RackIn(r) => self.rack_in.get_mut(r),
            Resource::Link(a, b) => self.link.get_mut(a * self.datacenters + b),
        }
    }

    fn rate(&self, r: Resource) -> f64 {
        match r {
            Resource::Disk(_) => self.rates.disk,
            Resource::NicIn(_) | Resource::NicOut(_) => self.rates.nic,
            Resource::RackOut(_) | Resource::RackIn(_) => self.rates.rack_uplink,
            Resource::Link(..) => self.rates.datacenter_link,
        }
    }

    /// A task starts using `uses`.
    pub fn join(&mut self, uses: &[(Resource, f64)]) {
        for (r, _) in uses {
            if let Some(n) = self.users(*r) {
                *n += 1;
            }
        }
    }

    /// A task stops using `uses`.
    pub fn leave(&mut self, uses: &[(Resource, f64)]) {
        for (r, _) in uses {
            if let Some(n) = self.users(*r) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Bytes rebuilt a second by a task using `uses` now.
    pub fn task_rate(&mut self, uses: &[(Resource, f64)]) -> f64 {
        let mut rate = f64::INFINITY;
        for (r, per_byte) in uses {
            let users = self.users(*r).map_or(1, |n| (*n).max(1));
            let share = self.rate(*r) / f64::from(users);
            if *per_byte > 0.0 {
                rate = rate.min(share / per_byte);
            }
        }
        if rate.is_finite() {
            rate
        } else {
            self.rates.disk
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_share_what_they_use() {
        let t = Topology::even(1, 2, 4, 1 << 40);
        let mut load = Load::new(&t, Rates::default());
        let a = [(Resource::Disk(0), 1.0), (Resource::NicIn(0), 8.0)];
        let b = [(Resource::Disk(0), 1.0)];
        load.join(&a);
        assert_eq!(
            load.task_rate(&a),
            1.25e9 / 8.0,
            "the interface carries 8 cells a byte"
        );
        load.join(&a);
        load.join(&b);
        assert_eq!(load.task_rate(&b), 200e6 / 3.0);
        load.leave(&a);
        load.leave(&a);
        assert_eq!(load.task_rate(&b), 200e6);
    }
}
