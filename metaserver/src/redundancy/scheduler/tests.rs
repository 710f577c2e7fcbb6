use super::*;
use crate::namespace::blocks::Generation;
use crate::namespace::inode::EcCodec;
use crate::registry::Storage;

const MIB: u64 = 1 << 20;

fn rs63() -> StoragePolicy {
    StoragePolicy::ErasureCoded {
        codec: EcCodec::Rs,
        data: 6,
        parity: 3,
        cell_kib: 1024,
    }
}

/// 12 servers, racks r1..r3 round robin (4 each); `dead` ones not live.
fn nodes(dead: &[u64]) -> Vec<NodeView> {
    (1..=12)
        .map(|id| NodeView {
            id: BlockServerId(id),
            addr: format!("127.0.0.1:{}", 7000 + id),
            rack: format!("r{}", (id - 1) % 3 + 1),
            storage: Storage {
                capacity: 1 << 40,
                available: 1 << 40,
                volumes: 1,
                ..Storage::default()
            },
            live: !dead.contains(&id),
            blocks: 0,
            registered_ms: 0,
            fully_reported: true,
            admin: raftfs_core::namespace::admin_state::Admin::InService,
            admin_state: None,
            drain_remaining: None,
        })
        .collect()
}

/// An RS-6-3 group of 6 full stripes, internal block i on server i+1, server 1 lost.
fn work() -> Work {
    Work {
        group: GroupId(1 << 20),
        policy: rs63(),
        length: 36 * MIB,
        missing: vec![0],
        holders: Vec::new(),
        replicas: (1..9)
            .map(|i| Replica {
                index: i,
                node: BlockServerId(u64::from(i) + 1),
                length: 6 << 20,
                generation: Generation::FIRST,
            })
            .collect(),
    }
}

fn groups() -> BTreeSet<GroupId> {
    [GroupId(1 << 20)].into_iter().collect()
}

fn scheduler(max_streams: u32) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        max_streams,
        xmits_weight: 0.5,
        task_timeout: Duration::from_secs(60),
        rack_aware: true,
    })
}

#[test]
fn weights_are_hdfs_s_and_saturate_hdfs_17284() {
    assert_eq!(task_weight(6, 1, 0.5, true), 3);
    assert_eq!(task_weight(10, 1, 0.5, true), 5);
    assert_eq!(
        task_weight(3, 1, 0.5, true),
        1,
        "1.5 truncates, as Java's (int)"
    );
    assert_eq!(task_weight(1, 1, 0.5, true), 1, "at least 1");
    assert_eq!(task_weight(6, 1, 0.5, false), 1, "a replica weighs 1");
    assert_eq!(task_weight(usize::MAX, 1, 1e300, true), u32::MAX);
    assert_eq!(task_weight(6, 1, f64::NAN, true), 1);
}

#[test]
fn priorities_put_the_group_closest_to_loss_first() {
    assert_eq!(priority(6, 6), Some(0));
    assert_eq!(priority(7, 6), Some(1));
    assert_eq!(priority(8, 6), Some(2));
    assert_eq!(priority(5, 6), None, "below k: unrecoverable");
    assert_eq!(priority(1, 1), Some(0), "one replica left");
    assert_eq!(priority(2, 1), Some(1));
}

/// A block whose copy is on a server being drained is copied from there (one source, the
/// block itself, weight 1), and never to another server out of service.
#[test]
fn a_drained_servers_block_is_copied_not_decoded_and_not_to_a_drained_server() {
    use raftfs_core::namespace::admin_state::Admin;
    let s = scheduler(8);
    let mut nodes = nodes(&[]);
    // Server 1 (r1) holds block 0 and drains; server 4 (r1) is in maintenance.
    nodes[0].admin = Admin::Decommissioning;
    nodes[3].admin = Admin::InMaintenance;
    let mut w = work();
    w.replicas.insert(
        0,
        Replica {
            index: 0,
            node: BlockServerId(1),
            length: 6 << 20,
            generation: Generation::FIRST,
        },
    );
    s.update(
        vec![(2, w)],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    assert!(
        s.assign(BlockServerId(4), 0, &nodes).is_empty(),
        "in maintenance"
    );
    // r1 keeps 2 of the group once server 1 is drained: the block goes back to r1, not to
    // r2 (which would then hold 4 of 9, more than RS-6-3 survives losing).
    assert!(
        s.assign(BlockServerId(11), 0, &nodes).is_empty(),
        "r2 is full"
    );
    let tasks = s.assign(BlockServerId(10), 0, &nodes);
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.validate(), Ok(()));
    assert!(t.is_copy());
    assert_eq!((t.index, t.weight), (0, 1));
    assert_eq!(
        (t.sources[0].node, t.sources[0].index),
        (BlockServerId(1), 0)
    );
}

#[test]
fn the_lost_block_goes_to_its_own_rack_with_local_sources_first() {
    let s = scheduler(8);
    let nodes = nodes(&[1]);
    s.update(
        vec![(2, work())],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    // Server 11 is in r2, which already holds 3 of the group's 9 blocks: not its turn while
    // server 10 (r1, which lost one) can take it.
    assert!(s.assign(BlockServerId(11), 0, &nodes).is_empty());
    let tasks = s.assign(BlockServerId(10), 0, &nodes);
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.validate(), Ok(()), "what a blockserver accepts");
    assert_eq!((t.index, t.weight), (0, 3));
    assert_eq!(t.sources.len(), 6);
    let local = t.sources.iter().filter(|x| x.rack == "r1").count();
    assert_eq!(
        local, 2,
        "both surviving r1 blocks are sources: {:?}",
        t.sources
    );
    let mut idx: Vec<u32> = t.sources.iter().map(|x| x.index).collect();
    idx.sort_unstable();
    idx.dedup();
    assert_eq!(idx.len(), 6, "distinct internal blocks");
    assert!(!idx.contains(&0));
    // In flight: nobody gets it again until it ends.
    assert!(s.assign(BlockServerId(10), 0, &nodes).is_empty());
    // Another server's report of it counts for nothing.
    s.finished(
        BlockServerId(11),
        &[TaskOutcome {
            task_id: t.id,
            group: t.group,
            index: 0,
            error: None,
        }],
    );
    assert_eq!(s.status().0.finished, 0, "a report by another server");
    s.finished(
        BlockServerId(10),
        &[TaskOutcome {
            task_id: t.id,
            group: t.group,
            index: 0,
            error: Some("source died".into()),
        }],
    );
    let again = s.assign(BlockServerId(10), 0, &nodes);
    assert_eq!(again.len(), 1, "a failed task is rescheduled");
    let (status, _) = s.status();
    assert_eq!((status.started, status.failed, status.in_flight), (2, 1, 1));
    // Done: not handed out again while the last scan still lists it, nor anything else of
    // the group to the same server.
    s.finished(
        BlockServerId(10),
        &[TaskOutcome {
            task_id: again[0].id,
            group: again[0].group,
            index: 0,
            error: None,
        }],
    );
    assert!(s.assign(BlockServerId(10), 0, &nodes).is_empty());
    assert!(s.assign(BlockServerId(11), 0, &nodes).is_empty());
    assert_eq!(s.status().0.in_flight, 0);
}

#[test]
fn the_weights_handed_out_stay_within_max_streams_minus_xmits_and_never_wrap() {
    let s = scheduler(8);
    let nodes = nodes(&[]);
    // Many groups each missing block 0 on a server that is not among the 12.
    let many: Vec<(usize, Work)> = (0..10)
        .map(|g| {
            let mut w = work();
            w.group = GroupId(w.group.0 + g);
            (0, w)
        })
        .collect();
    s.update(
        many.clone(),
        &(0..10).map(|g| GroupId((1 << 20) + g)).collect(),
        0,
        ThrottleSettings::default(),
    );
    // RS-6-3 tasks weigh 3: two fit in 8, a third would make 9.
    let tasks = s.assign(BlockServerId(1), 0, &nodes);
    assert_eq!(tasks.iter().map(|t| t.weight).collect::<Vec<_>>(), [3, 3]);
    s.update(
        many.clone(),
        &(0..10).map(|g| GroupId((1 << 20) + g)).collect(),
        0,
        ThrottleSettings::default(),
    );
    assert_eq!(
        s.assign(BlockServerId(10), 3, &nodes).len(),
        1,
        "3 + 3 <= 8"
    );
    assert!(
        s.assign(BlockServerId(10), 6, &nodes).is_empty(),
        "6 + 3 > 8"
    );
    // A server carrying nothing takes one task even when it weighs more than the limit.
    let small = scheduler(2);
    small.update(
        many.clone(),
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    assert!(small.assign(BlockServerId(10), 1, &nodes).is_empty());
    assert_eq!(small.assign(BlockServerId(10), 0, &nodes).len(), 1);
    assert!(
        s.assign(BlockServerId(12), u32::MAX, &nodes).is_empty(),
        "a bogus report stops work"
    );
}

#[test]
fn budgets_are_shared_by_the_servers_of_the_destination() {
    let s = scheduler(8);
    let nodes = nodes(&[5]);
    let mut t = ThrottleSettings {
        node_bytes_per_sec: 50_000_000,
        ..ThrottleSettings::default()
    };
    t.rack_pairs.insert(("r1".into(), "r2".into()), 9_000_000);
    t.racks.insert("r1".into(), "dc1".into());
    t.racks.insert("r2".into(), "dc1".into());
    t.racks.insert("r3".into(), "dc2".into());
    t.datacenter_pairs
        .insert(("dc1".into(), "dc2".into()), 8_000_000);
    s.update(Vec::new(), &BTreeSet::new(), 0, t);
    // r2 has servers 2, 5, 8, 11; 5 is dead: 3 share the r1 -> r2 budget.
    let th = s.throttle_for(BlockServerId(2), &nodes);
    assert_eq!(th.node_bytes_per_sec, 50_000_000);
    assert_eq!(th.budgets.len(), 1);
    assert_eq!(th.budgets[0].bytes_per_sec, 3_000_000);
    assert_eq!(th.budgets[0].from_racks, vec!["r1".to_owned()]);
    // r3 (dc2) has 4 live servers; traffic from r1 and r2 (dc1) counts against dc1 -> dc2.
    let th = s.throttle_for(BlockServerId(3), &nodes);
    assert_eq!(th.budgets.len(), 1);
    assert_eq!(th.budgets[0].bytes_per_sec, 2_000_000);
    assert_eq!(
        th.budgets[0].from_racks,
        vec!["r1".to_owned(), "r2".to_owned()]
    );
    assert!(s.throttle_for(BlockServerId(1), &nodes).budgets.is_empty());
}

#[test]
fn empty_blocks_of_a_short_group_are_free_sources() {
    let s = scheduler(8);
    let nodes = nodes(&[1]);
    // 2 MiB + 5 bytes in RS-6-3: data blocks 0..3 and the 3 parity blocks hold bytes; 3..6
    // are empty. Block 0 is lost; only 5 copies exist, yet it can be decoded.
    let mut w = work();
    w.length = 2 * MIB + 5;
    w.replicas = [1u32, 2, 6, 7, 8]
        .iter()
        .map(|i| Replica {
            index: *i,
            node: BlockServerId(u64::from(*i) + 1),
            length: expected_len(&w.policy, w.length, *i),
            generation: Generation::FIRST,
        })
        .collect();
    s.update(
        vec![(0, w)],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    // Blocks 1 and 7 are on servers 2 and 8, both in r2: a spare there reads 2 of its 3
    // real sources in its own rack, one more than r1's spare would.
    assert!(
        s.assign(BlockServerId(10), 0, &nodes).is_empty(),
        "not the best target"
    );
    let tasks = s.assign(BlockServerId(11), 0, &nodes);
    assert_eq!(tasks.len(), 1);
    let local = tasks[0]
        .sources
        .iter()
        .filter(|x| !x.is_zeros() && x.rack == "r2")
        .count();
    assert_eq!(local, 2);
    let free: Vec<u32> = tasks[0]
        .sources
        .iter()
        .filter(|x| x.is_zeros())
        .map(|x| x.index)
        .collect();
    assert_eq!(free, vec![3, 4, 5]);
    assert_eq!(tasks[0].sources.len(), 6);
    assert_eq!(tasks[0].validate(), Ok(()), "what a blockserver accepts");
}

#[test]
fn rack_blind_tasks_are_valid_too() {
    let s = Scheduler::new(SchedulerConfig {
        rack_aware: false,
        ..scheduler(8).config
    });
    let nodes = nodes(&[1]);
    let mut short = work();
    short.group = GroupId(short.group.0 + 1);
    short.length = 2 * MIB + 5;
    short
        .replicas
        .retain(|r| [1, 2, 6, 7, 8].contains(&r.index));
    let mut replica = work();
    replica.group = GroupId(replica.group.0 + 2);
    replica.policy = StoragePolicy::Replicated(3);
    replica.length = 0;
    replica.replicas = vec![Replica {
        index: 0,
        node: BlockServerId(2),
        length: 0,
        generation: Generation::FIRST,
    }];
    s.update(
        vec![(2, work()), (0, short), (0, replica)],
        &(0..3).map(|g| GroupId((1 << 20) + g)).collect(),
        0,
        ThrottleSettings::default(),
    );
    let tasks = s.assign(BlockServerId(10), 0, &nodes);
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        assert_eq!(t.validate(), Ok(()), "{t:?}");
        assert!(!t.aggregate);
    }
}

#[test]
fn tasks_of_deleted_groups_are_cancelled_where_they_run() {
    let s = scheduler(8);
    let nodes = nodes(&[1]);
    s.update(
        vec![(2, work())],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    let t = s.assign(BlockServerId(10), 0, &nodes);
    assert_eq!(t.len(), 1);
    assert!(s.take_cancellations(BlockServerId(10)).is_empty());
    // The file was deleted: the next scan finds the task's group gone.
    assert_eq!(s.in_flight_groups(), groups());
    s.update(Vec::new(), &groups(), 0, ThrottleSettings::default());
    assert_eq!(s.take_cancellations(BlockServerId(10)), vec![t[0].id]);
    assert!(
        s.take_cancellations(BlockServerId(10)).is_empty(),
        "sent once"
    );
    assert_eq!(s.status().0.in_flight, 0);
}

#[test]
fn a_budget_is_shared_by_the_destination_servers_that_have_work() {
    let s = scheduler(8);
    let nodes = nodes(&[1]);
    let mut t = ThrottleSettings::default();
    t.rack_pairs.insert(("r2".into(), "r1".into()), 9_000_000);
    s.update(vec![(2, work())], &BTreeSet::new(), 0, t.clone());
    // Nobody has work: the 3 live r1 servers (4, 7, 10) share it.
    assert_eq!(
        s.throttle_for(BlockServerId(10), &nodes).budgets[0].bytes_per_sec,
        3_000_000
    );
    // Server 10 takes the rebuild: it alone crosses from r2, with the whole budget.
    assert_eq!(s.assign(BlockServerId(10), 0, &nodes).len(), 1);
    assert_eq!(
        s.throttle_for(BlockServerId(10), &nodes).budgets[0].bytes_per_sec,
        9_000_000
    );
    // Server 7 starts rebuilding too (another pool's task: its heartbeat shows xmits). Its
    // fair share is half, but server 10 holds the whole budget until its next heartbeat:
    // 7 waits (1 byte a second) rather than the two crossing at 1.5 times the budget.
    let mut nodes = nodes;
    nodes[6].storage.xmits_in_progress = 3;
    let share =
        |s: &Scheduler, id| s.throttle_for(BlockServerId(id), &nodes).budgets[0].bytes_per_sec;
    assert_eq!(share(&s, 7), 1);
    assert_eq!(
        share(&s, 10),
        4_500_000,
        "10 gives up half at its next heartbeat"
    );
    assert_eq!(share(&s, 7), 4_500_000, "and 7 takes it at its own");
    // An idle server gets what is left: nothing. It moves nothing until it has work, and
    // it gets work only in a heartbeat reply, whose share is computed after the work.
    assert_eq!(share(&s, 4), 1);
}

#[test]
fn a_server_with_any_copy_of_the_group_gets_no_other_block_of_it() {
    let s = scheduler(8);
    let nodes = nodes(&[1]);
    let mut w = work();
    // Server 10 holds a corrupt (hence not "good") copy of one of the group's blocks.
    w.holders = vec![BlockServerId(10)];
    s.update(
        vec![(2, w)],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    assert!(s.assign(BlockServerId(10), 0, &nodes).is_empty());
}

/// Work added between passes (a dead server's groups) is queued at once, once, and a newer
/// view of a queued group replaces it; it survives the end of a pass that began before it
/// was added and did not see it, and its running task is not taken for rebuilt; a pass that
/// found the group too keeps one entry.
#[test]
fn work_added_between_passes_is_queued_once_and_outlives_the_pass() {
    let s = scheduler(8);
    let pass_started = Instant::now();
    let other = Work {
        group: GroupId((1 << 20) + 1),
        ..work()
    };
    s.add(vec![(1, work())]);
    s.add(vec![(0, work())]);
    assert_eq!(
        s.lock().queues.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 0, 0],
        "the newer, more urgent view replaced the first"
    );
    let tasks = s.assign(BlockServerId(1), 0, &nodes(&[]));
    assert_eq!(
        tasks.len(),
        1,
        "one task for the one missing block: {tasks:?}"
    );
    // A pass that read the group before its server died ends with other work only.
    s.update_pass(
        vec![(1, other.clone())],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
        pass_started,
    );
    let queued: Vec<GroupId> = s.lock().queues.iter().flatten().map(|w| w.group).collect();
    assert_eq!(queued, vec![work().group, other.group]);
    assert_eq!(
        s.status().0.in_flight,
        1,
        "its task is still running, not taken for rebuilt"
    );
    // The next pass saw it: it is queued once, and no longer carried over.
    s.update(
        vec![(0, work())],
        &BTreeSet::new(),
        0,
        ThrottleSettings::default(),
    );
    let queued: Vec<GroupId> = s.lock().queues.iter().flatten().map(|w| w.group).collect();
    assert_eq!(queued, vec![work().group]);
    assert!(s.lock().recent.is_empty());
}

/// Task ids carry the term of the active that handed them out: a new active's first task is
/// never an id its predecessor used, so a cancellation or an outcome names one task only.
#[test]
fn task_ids_are_unique_across_terms() {
    // Each active is its own process with its own scheduler.
    let first_task = |term| {
        let s = scheduler(8);
        s.enter_term(term);
        s.update(
            vec![(2, work())],
            &BTreeSet::new(),
            0,
            ThrottleSettings::default(),
        );
        let tasks = s.assign(BlockServerId(10), 0, &nodes(&[1]));
        assert_eq!(tasks.len(), 1);
        tasks[0].id
    };
    assert_eq!(first_task(3), TaskId((3 << 32) + 1));
    assert_eq!(first_task(4), TaskId((4 << 32) + 1));
}

/// An RS-6-3 group like [`work`], internal block 0 lost, whose other blocks are on servers
/// `holders` (index i + 1 on `holders[i]`).
fn work_on(group: u64, holders: &[u64]) -> Work {
    let mut w = work();
    w.group = GroupId(group);
    w.replicas = holders
        .iter()
        .zip(1u32..)
        .map(|(node, index)| Replica {
            index,
            node: BlockServerId(*node),
            length: 6 << 20,
            generation: Generation::FIRST,
        })
        .collect();
    w
}

/// A budget is never split into shares under `MIN_SHARE`: past `budget / MIN_SHARE` servers
/// reading across it, work that would cross it waits, and goes to a server already among
/// them. A server rebuilding from its own side holds none of it back.
#[test]
fn a_budget_has_as_many_readers_as_min_share_allows() {
    let s = scheduler(8);
    let nodes = nodes(&[]);
    // r1 -> r2 at twice MIN_SHARE: two readers at most.
    let mut t = ThrottleSettings::default();
    t.rack_pairs
        .insert(("r1".into(), "r2".into()), 2 * MIN_SHARE);
    // Three groups whose lost block the r2 servers rebuild from r1's and r3's copies.
    let queued: Vec<(usize, Work)> = (0..3)
        .map(|g| (2, work_on((1 << 20) + g, &[1, 3, 4, 6, 7, 9, 10, 12])))
        .collect();
    s.update(queued, &BTreeSet::new(), 0, t);
    let crossing = |tasks: &[ReconstructionTask]| {
        tasks
            .iter()
            .filter(|t| t.sources.iter().any(|src| src.rack == "r1"))
            .count()
    };
    let first = s.assign(BlockServerId(2), 5, &nodes);
    let second = s.assign(BlockServerId(5), 5, &nodes);
    assert_eq!(
        (crossing(&first), crossing(&second)),
        (1, 1),
        "{first:?} {second:?}"
    );
    // A third r2 server would make three readers: the last group waits.
    assert!(s.assign(BlockServerId(8), 5, &nodes).is_empty());
    // ... and goes to a reader with room.
    assert_eq!(crossing(&s.assign(BlockServerId(2), 5, &nodes)), 1);
    // The two readers share the budget; a third r2 server holds nothing back.
    let share = |id| s.throttle_for(BlockServerId(id), &nodes).budgets[0].bytes_per_sec;
    assert_eq!(share(2), MIN_SHARE);
    assert_eq!(share(5), MIN_SHARE);
}

/// A heartbeat plans at most `MAX_PLANS` blocks, and the next goes on from where it
/// stopped: work behind blocks this server cannot take is reached.
#[test]
fn work_behind_blocks_a_server_cannot_take_is_reached() {
    let s = scheduler(8);
    let nodes = nodes(&[]);
    // 100 groups that server 2 holds a copy of (it may not take their lost block), then one
    // it may.
    let mut queued: Vec<(usize, Work)> = (0..100)
        .map(|g| (2, work_on((1 << 20) + g, &[2, 3, 4, 5, 6, 7, 8, 9])))
        .collect();
    queued.push((2, work_on((1 << 20) + 100, &[3, 4, 5, 6, 7, 8, 9, 10])));
    s.update(queued, &BTreeSet::new(), 0, ThrottleSettings::default());
    let mut heartbeats = 0;
    let task = loop {
        heartbeats += 1;
        assert!(heartbeats <= 3, "never reached");
        if let Some(t) = s.assign(BlockServerId(2), 0, &nodes).pop() {
            break t;
        }
    };
    assert_eq!(task.group, GroupId((1 << 20) + 100));
    assert_eq!(heartbeats, 2, "the first heartbeat stopped at MAX_PLANS");
}
