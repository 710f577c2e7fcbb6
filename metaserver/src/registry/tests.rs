use super::*;

fn blk(group: u64, index: u32, length: u64) -> Reported {
    Reported {
        group: GroupId(group),
        index,
        length,
        generation: Generation::FIRST,
    }
}

fn registry() -> Registry {
    let r = Registry::new(Duration::from_secs(60));
    r.register(BlockServerId(1), "127.0.0.1:1", "r1", Storage::default())
        .expect("register");
    r
}

#[test]
fn unregistered_nodes_are_told_to_register() {
    let r = registry();
    assert_eq!(
        r.heartbeat(BlockServerId(9), Storage::default()),
        Err(RegistryError::UnknownNode(BlockServerId(9)))
    );
    assert_eq!(
        r.incremental(BlockServerId(9), &[blk(1, 0, 1)], &[]),
        Err(RegistryError::UnknownNode(BlockServerId(9)))
    );
    assert!(
        r.register(BlockServerId(0), "a", "r1", Storage::default())
            .is_err()
    );
    assert!(
        r.register(BlockServerId(2), "", "r1", Storage::default())
            .is_err()
    );
}

#[test]
fn a_split_full_report_replaces_the_blocks_only_once_every_part_arrived() {
    let r = registry();
    r.incremental(BlockServerId(1), &[blk(10, 0, 5), blk(11, 0, 5)], &[])
        .expect("ibr");
    assert!(
        !r.full_report_part(BlockServerId(1), 7, 0, 2, &[blk(11, 0, 5)])
            .expect("part 0")
    );
    // Half a report changes nothing: group 10 is still there.
    assert_eq!(r.replicas(GroupId(10), Generation::FIRST).len(), 1);
    // A repeated part is not counted twice.
    assert!(
        !r.full_report_part(BlockServerId(1), 7, 0, 2, &[blk(11, 0, 5)])
            .expect("part 0 again")
    );
    assert!(
        r.full_report_part(BlockServerId(1), 7, 1, 2, &[blk(12, 3, 9)])
            .expect("part 1")
    );
    assert!(
        r.replicas(GroupId(10), Generation::FIRST).is_empty(),
        "not in the full report: gone"
    );
    assert_eq!(r.replicas(GroupId(11), Generation::FIRST).len(), 1);
    assert_eq!(
        r.replicas(GroupId(12), Generation::FIRST),
        vec![Replica {
            index: 3,
            node: BlockServerId(1),
            length: 9,
            generation: Generation::FIRST,
        }]
    );
    assert!(
        r.full_report_part(BlockServerId(1), 8, 2, 2, &[]).is_err(),
        "part out of range"
    );
}

#[test]
fn a_new_report_id_restarts_the_collection() {
    let r = registry();
    assert!(
        !r.full_report_part(BlockServerId(1), 1, 0, 2, &[blk(10, 0, 1)])
            .expect("part")
    );
    assert!(
        r.full_report_part(BlockServerId(1), 2, 0, 1, &[blk(20, 0, 1)])
            .expect("whole")
    );
    assert!(r.replicas(GroupId(10), Generation::FIRST).is_empty());
    assert_eq!(r.replicas(GroupId(20), Generation::FIRST).len(), 1);
}

#[test]
fn corrupt_copies_and_dead_nodes_are_not_locations() {
    let (clock, hand) = raftfs_runtime::Clock::manual(0);
    let r = Registry::new(Duration::from_secs(10)).with_clock(clock);
    r.register(BlockServerId(1), "a:1", "r1", Storage::default())
        .expect("register");
    r.incremental(BlockServerId(1), &[blk(10, 0, 5)], &[])
        .expect("ibr");
    hand.advance(Duration::from_secs(10));
    assert_eq!(
        r.replicas(GroupId(10), Generation::FIRST).len(),
        1,
        "live for 10 s"
    );
    hand.advance(Duration::from_millis(1));
    assert!(
        r.replicas(GroupId(10), Generation::FIRST).is_empty(),
        "dead node"
    );
    let r = registry();
    r.register(BlockServerId(2), "b:1", "r2", Storage::default())
        .expect("register");
    r.incremental(BlockServerId(1), &[blk(10, 0, 5), blk(10, 1, 5)], &[])
        .expect("ibr");
    r.incremental(BlockServerId(2), &[blk(10, 2, 5)], &[])
        .expect("ibr");
    r.mark_corrupt(GroupId(10), 1, BlockServerId(1));
    let idx: Vec<u32> = r
        .replicas(GroupId(10), Generation::FIRST)
        .iter()
        .map(|x| x.index)
        .collect();
    assert_eq!(idx, vec![0, 2]);
    // Rewritten (by reconstruction): good again.
    r.incremental(BlockServerId(1), &[blk(10, 1, 5)], &[])
        .expect("ibr");
    assert_eq!(r.replicas(GroupId(10), Generation::FIRST).len(), 3);
    r.incremental(BlockServerId(1), &[], &[blk(10, 0, 5), blk(10, 1, 5)])
        .expect("ibr");
    assert_eq!(r.replicas(GroupId(10), Generation::FIRST).len(), 1);
}

#[test]
fn deletions_are_handed_out_once() {
    let r = registry();
    r.queue_delete(BlockServerId(1), GroupId(10), 0, Generation::FIRST);
    assert_eq!(
        r.heartbeat(BlockServerId(1), Storage::default())
            .expect("hb"),
        vec![(GroupId(10), 0, Generation::FIRST)]
    );
    assert!(
        r.heartbeat(BlockServerId(1), Storage::default())
            .expect("hb")
            .is_empty()
    );
}

#[test]
fn a_large_backlog_of_deletions_goes_out_a_bounded_share_per_heartbeat() {
    let r = registry();
    let queued = super::MAX_DELETES_PER_HEARTBEAT * 2 + 7;
    for g in 0..queued as u64 {
        r.queue_delete(BlockServerId(1), GroupId(g), 0, Generation::FIRST);
    }
    let mut seen = Vec::new();
    loop {
        let reply = r
            .heartbeat(BlockServerId(1), Storage::default())
            .expect("hb");
        if reply.is_empty() {
            break;
        }
        assert!(reply.len() <= super::MAX_DELETES_PER_HEARTBEAT);
        seen.extend(reply);
    }
    // Every deletion goes out once, oldest group first.
    assert_eq!(seen.len(), queued);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

/// Generation stamps: a copy stamped older than the group's generation is neither a replica
/// nor a location (a stale writer's, or one lease recovery did not reach); one stamped newer
/// (restamped by a recovery whose entry did not commit yet) is. Reports restamp a copy.
#[test]
fn copies_older_than_the_group_are_not_replicas() {
    let r = registry();
    r.register(BlockServerId(2), "127.0.0.1:2", "r1", Storage::default())
        .expect("register");
    let at = |length, generation| Reported {
        group: GroupId(10),
        index: 0,
        length,
        generation: Generation(generation),
    };
    r.incremental(BlockServerId(1), &[at(50, 1)], &[])
        .expect("ibr");
    r.incremental(BlockServerId(2), &[at(50, 2)], &[])
        .expect("ibr");
    let nodes = |g| {
        r.replicas(GroupId(10), Generation(g))
            .iter()
            .map(|c| (c.node.get(), c.generation.get()))
            .collect::<Vec<_>>()
    };
    assert_eq!(nodes(1), vec![(1, 1), (2, 2)]);
    assert_eq!(nodes(2), vec![(2, 2)], "the stale copy is not counted");
    assert_eq!(nodes(3), vec![]);
    // Node 1's copy restamped by a recovery: counted again.
    r.incremental(BlockServerId(1), &[at(50, 2)], &[])
        .expect("ibr");
    assert_eq!(nodes(2), vec![(1, 2), (2, 2)]);
    // The sweep sees each copy's stamp, and the deletion it queues names it.
    let mut seen = r.reported_blocks();
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![
            (GroupId(10), 0, BlockServerId(1), Generation(2)),
            (GroupId(10), 0, BlockServerId(2), Generation(2)),
        ]
    );
    r.queue_delete(BlockServerId(2), GroupId(10), 0, Generation(1));
    assert_eq!(
        r.heartbeat(BlockServerId(2), Storage::default())
            .expect("hb"),
        vec![(GroupId(10), 0, Generation(1))]
    );
}

/// A copy lease recovery restamped counts at once on the active (its server's report may
/// come after the entry commits); one not yet reported at the group's generation is still
/// offered to readers, last, as an unreported target.
#[test]
fn restamped_copies_count_before_their_report() {
    let r = registry();
    let old = Reported {
        group: GroupId(10),
        index: 0,
        length: 50,
        generation: Generation(1),
    };
    r.incremental(BlockServerId(1), &[old], &[]).expect("ibr");
    let targets = [(0, BlockServerId(1))];
    assert!(r.replicas(GroupId(10), Generation(2)).is_empty());
    assert_eq!(
        r.unreported(GroupId(10), &targets, Generation(2)),
        targets.to_vec(),
        "reported only at an older generation: offered as unreported"
    );
    r.restamped(
        BlockServerId(1),
        Reported {
            generation: Generation(2),
            ..old
        },
    );
    assert_eq!(r.replicas(GroupId(10), Generation(2)).len(), 1);
    assert!(
        r.unreported(GroupId(10), &targets, Generation(2))
            .is_empty()
    );
    r.restamped(BlockServerId(9), old);
    assert!(
        r.holders(GroupId(10)) == vec![BlockServerId(1)],
        "unknown nodes ignored"
    );
}

/// Heartbeat replies plan on a snapshot of the servers that is reused for up to
/// `SNAPSHOT_MAX_AGE`: storage and xmits may be that much behind, but a registration, an
/// admin change, a full report completing, lost volumes and a dead server's return are seen
/// at once; a server's death shows once the snapshot ages out.
#[test]
fn the_snapshot_is_reused_until_something_placement_must_see_changes() {
    let (clock, hand) = raftfs_runtime::Clock::manual(1_000_000);
    let r = Registry::new(Duration::from_secs(10)).with_clock(clock);
    let room = Storage {
        capacity: 100,
        available: 100,
        volumes: 2,
        ..Storage::default()
    };
    for id in [1, 2] {
        r.register(BlockServerId(id), "127.0.0.1:1", "r1", room)
            .expect("register");
    }
    let first = r.snapshot();
    assert_eq!(first.nodes.len(), 2);
    // Storage and xmits: the same snapshot.
    let busy = Storage {
        available: 50,
        xmits_in_progress: 3,
        ..room
    };
    r.heartbeat(BlockServerId(1), busy).expect("heartbeat");
    assert_eq!(r.snapshot().number, first.number);
    // ... until it ages out.
    hand.advance(SNAPSHOT_MAX_AGE);
    let aged = r.snapshot();
    assert_ne!(aged.number, first.number);
    assert_eq!(aged.nodes[0].storage.xmits_in_progress, 3);
    // Each of these is seen at once.
    let mut last = aged.number;
    let mut fresh = |what: &str| {
        let n = r.snapshot().number;
        assert_ne!(n, last, "{what} not seen at once");
        last = n;
    };
    r.register(BlockServerId(3), "127.0.0.1:3", "r2", room)
        .expect("register");
    fresh("a registration");
    r.full_report_part(BlockServerId(3), 1, 0, 1, &[blk(5, 0, 1)])
        .expect("report");
    fresh("a full report");
    r.heartbeat(
        BlockServerId(2),
        Storage {
            failed_volumes: 1,
            ..room
        },
    )
    .expect("heartbeat");
    fresh("a failed volume");
    r.set_admin(
        1,
        [(
            BlockServerId(2),
            AdminState::Decommissioning { since_ms: 1 },
        )]
        .into_iter()
        .collect(),
    );
    fresh("an admin change");
    // Server 1 falls silent past dead-after (the others beat), and comes back.
    for _ in 0..3 {
        hand.advance(Duration::from_secs(4));
        for id in [2, 3] {
            r.heartbeat(BlockServerId(id), room).expect("heartbeat");
        }
    }
    let dead = r.snapshot();
    assert!(!dead.nodes[0].live);
    r.heartbeat(BlockServerId(1), room).expect("back");
    let back = r.snapshot();
    assert_ne!(back.number, dead.number, "a return not seen at once");
    assert!(back.nodes[0].live);
}

/// A report naming a position no group can have is refused whole, and changes nothing.
#[test]
fn reports_of_impossible_positions_are_refused_whole() {
    let r = registry();
    let bad = [blk(7, 0, 5), blk(8, MAX_INDEX, 5)];
    assert!(matches!(
        r.incremental(BlockServerId(1), &bad, &[]),
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        r.full_report_part(BlockServerId(1), 3, 0, 1, &bad),
        Err(RegistryError::Invalid(_))
    ));
    assert!(r.replicas(GroupId(7), Generation::FIRST).is_empty());
}

/// What the registry's compact records cannot hold is refused whole, not truncated: a
/// length past `MAX_BLOCK_SIZE`, a group id past the keys' limit.
#[test]
fn reports_past_the_records_limits_are_refused_whole() {
    let r = registry();
    for bad in [
        blk(7, 0, MAX_BLOCK_SIZE + 1),
        blk(block_set::GROUP_ID_LIMIT, 0, 5),
    ] {
        assert!(matches!(
            r.incremental(BlockServerId(1), &[blk(9, 0, 5), bad], &[]),
            Err(RegistryError::Invalid(_))
        ));
        assert!(matches!(
            r.full_report_part(BlockServerId(1), 3, 0, 1, &[bad]),
            Err(RegistryError::Invalid(_))
        ));
    }
    assert!(r.reported_blocks().is_empty());
    r.incremental(BlockServerId(1), &[blk(7, 0, MAX_BLOCK_SIZE)], &[])
        .expect("the longest block");
    assert_eq!(
        r.replicas(GroupId(7), Generation::FIRST)[0].length,
        MAX_BLOCK_SIZE
    );
}

/// A group's copies keep their own generations whichever arrives first: the newest becomes
/// the group's usual one, the others are kept aside, and nothing is left aside once they
/// are gone.
#[test]
fn copies_keep_their_generations_in_any_order() {
    let r = registry();
    for n in 2..=4 {
        r.register(
            BlockServerId(n),
            &format!("127.0.0.1:{n}"),
            "r1",
            Storage::default(),
        )
        .expect("register");
    }
    let at = |node: u64, generation: u64| {
        r.incremental(
            BlockServerId(node),
            &[Reported {
                group: GroupId(10),
                index: 0,
                length: 50 + node,
                generation: Generation(generation),
            }],
            &[],
        )
        .expect("ibr");
    };
    let all = || {
        let mut v: Vec<(u64, u64, u64)> = r
            .replicas(GroupId(10), Generation(1))
            .iter()
            .map(|c| (c.node.get(), c.generation.get(), c.length))
            .collect();
        v.sort_unstable();
        v
    };
    at(1, 1);
    at(2, 1);
    at(3, 2);
    assert_eq!(all(), vec![(1, 1, 51), (2, 1, 52), (3, 2, 53)]);
    at(4, 1);
    at(1, 2);
    assert_eq!(all(), vec![(1, 2, 51), (2, 1, 52), (3, 2, 53), (4, 1, 54)]);
    assert_eq!(r.replicas(GroupId(10), Generation(2)).len(), 2);
    at(2, 3);
    assert_eq!(all(), vec![(1, 2, 51), (2, 3, 52), (3, 2, 53), (4, 1, 54)]);
    assert!(
        r.full_report_part(BlockServerId(4), 1, 0, 1, &[])
            .expect("node 4's copy gone")
    );
    for node in 1..=3 {
        r.incremental(BlockServerId(node), &[], &[blk(10, 0, 0)])
            .expect("removed");
    }
    assert!(all().is_empty());
    let inner = r.lock();
    assert!(inner.by_group.groups.is_empty() && inner.by_group.odd.is_empty());
}
