//! The BlockData service over real gRPC on a real port: round trips of every size, ranged
//! reads, writers that die mid-stream, corruption on disk, full disks, bad requests.

mod common;

use common::{Blockserver, RecordingMeta, bytes, eventually, info, kind, read, write};
use raftfs_core::block_token::{Claims, Indices, Mode};
use raftfs_core::id::{Generation, GroupId};
use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;
use tonic::Code;
use tonic::transport::Channel;

const MIB: usize = 1 << 20;

#[tokio::test]
async fn blocks_of_every_size_round_trip_and_read_in_any_range() {
    let server = Blockserver::start(2, |_| {}).await;
    let mut c = server.client().await;
    let sizes = [0, 1, 65_535, 65_536, 65_537, MIB, 3 * MIB + 12_345];
    for (i, len) in sizes.into_iter().enumerate() {
        let group = 100 + i as u64;
        let data = bytes(len, i as u8);
        // Pieces of an odd size, so that messages straddle checksum chunks.
        let piece = 100_003;
        assert_eq!(
            write(&mut c, group, 2, &data, piece).await.expect("write"),
            len as u64
        );
        assert_eq!(info(&mut c, group, 2).await.expect("info"), len as u64);
        assert_eq!(
            read(&mut c, group, 2, 0, 0).await.expect("read all"),
            data,
            "len {len}"
        );
        let ranges = [
            (0, 1),
            (len.saturating_sub(1), 1),
            (MIB - 3, 10),
            (65_530, 70_000),
            (MIB + 1, 2 * MIB),
            (7, 0),
            (len, 0),
        ];
        for (off, l) in ranges {
            let end = if l == 0 { len } else { off + l };
            if off > len || end > len || (l == 0 && off == 0) {
                continue;
            }
            let got = read(&mut c, group, 2, off as u64, l as u64)
                .await
                .expect("ranged read");
            assert!(got == data[off..end], "len {len}: [{off}, {end})");
        }
        // Beyond the end: refused before any byte.
        let beyond = read(&mut c, group, 2, len as u64, 1)
            .await
            .expect_err("beyond");
        assert_eq!(beyond.code(), Code::OutOfRange);
        assert_eq!(kind(&beyond), pb::ErrorKind::InvalidArgument);
    }
    // A block is written once.
    let again = write(&mut c, 100, 2, b"x", 1).await.expect_err("rewrite");
    assert_eq!(again.code(), Code::AlreadyExists);
    // Nothing half-written is left behind.
    assert!(server.temporaries().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn unknown_blocks_and_bad_requests_are_typed_errors() {
    let server = Blockserver::start(1, |_| {}).await;
    let mut c = server.client().await;
    let missing = info(&mut c, 9, 0).await.expect_err("missing");
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(kind(&missing), pb::ErrorKind::BlockNotFound);
    let missing = read(&mut c, 9, 0, 0, 0).await.expect_err("missing");
    assert_eq!(kind(&missing), pb::ErrorKind::BlockNotFound);

    let unnamed = c
        .block_info(pb::BlockInfoRequest {
            block: None,
            token: Vec::new(),
        })
        .await
        .expect_err("no block");
    assert_eq!(unnamed.code(), Code::InvalidArgument);
    let huge_index = write(&mut c, 1, 1 << 20, b"abc", 1)
        .await
        .expect_err("index");
    assert_eq!(kind(&huge_index), pb::ErrorKind::InvalidArgument);
    let empty = c
        .write_block(tokio_stream::iter(Vec::<pb::WriteBlockRequest>::new()))
        .await
        .expect_err("empty stream");
    assert_eq!(empty.code(), Code::InvalidArgument);
    // A stream that names another block mid-way keeps nothing.
    let mut msgs = common::write_messages(5, 0, &bytes(300, 1), 100, true);
    msgs[1].block = Some(pb::BlockRef { group: 6, index: 0 });
    let mixed = c
        .write_block(tokio_stream::iter(msgs))
        .await
        .expect_err("two blocks in one stream");
    assert_eq!(mixed.code(), Code::InvalidArgument);
    assert_eq!(
        kind(&info(&mut c, 5, 0).await.expect_err("kept nothing")),
        pb::ErrorKind::BlockNotFound
    );
    assert!(server.temporaries().is_empty());
    server.stop().await;
}

/// A read with checksums sends the whole chunks around the range, each message with its
/// offset and the CRC32C stored for each chunk: the reader checks them and keeps its range.
#[tokio::test]
async fn reads_with_checksums_send_whole_chunks_and_their_stored_sums() {
    let server = Blockserver::start(1, |_| {}).await;
    let mut c = server.client().await;
    let data = bytes(3 * (1 << 20) + 12_345, 6);
    write(&mut c, 21, 0, &data, 1 << 20).await.expect("write");
    for (offset, len) in [
        (0u64, 0u64),
        (70_000, 80_000),
        (1_048_000, 2_000_000),
        (3 << 20, 12_345),
        (5, 1),
    ] {
        let mut stream = c
            .read_block(pb::ReadBlockRequest {
                block: Some(pb::BlockRef {
                    group: 21,
                    index: 0,
                }),
                offset,
                length: len,
                token: common::token(21),
                checksums: true,
            })
            .await
            .expect("read")
            .into_inner();
        let want_len = if len == 0 {
            data.len() as u64 - offset
        } else {
            len
        };
        let mut r = raftfs_core::checksum::ChunkedRead::new(offset, want_len, 0);
        let mut messages = 0;
        while let Some(m) = stream.message().await.expect("message") {
            assert_eq!(m.offset % (64 << 10), 0, "pieces start on chunk boundaries");
            r.push(m.offset, &m.data, &m.checksums)
                .expect("checksums match");
            messages += 1;
        }
        assert!(messages >= 1);
        let end = (offset + want_len) as usize;
        assert_eq!(
            r.into_bytes(),
            data[offset as usize..end].to_vec(),
            "{offset}+{len}"
        );
    }
    server.stop().await;
}

/// A writer whose host lost power closes nothing: its stream, silent past `write-idle-secs`,
/// is ended as if it had gone, keeping the bytes that arrived (for lease recovery).
#[tokio::test]
async fn an_idle_write_stream_is_ended_and_keeps_what_arrived() {
    let server = Blockserver::start(1, |c| c.write_idle_secs = 1).await;
    let mut c = server.client().await;
    let data = bytes(70_000, 4);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    for m in common::write_messages(13, 0, &data, 30_000, false) {
        tx.send(m).await.expect("queued");
    }
    // `tx` stays open and sends nothing more: the stream neither ends nor fails.
    let started = std::time::Instant::now();
    let length = c
        .write_block(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("ended by the server")
        .into_inner()
        .length;
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(length, data.len() as u64);
    assert_eq!(read(&mut c, 13, 0, 0, 0).await.expect("read"), data);
    drop(tx);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_ended_without_finalize_keeps_what_arrived() {
    let server = Blockserver::start(1, |_| {}).await;
    let mut c = server.client().await;
    let data = bytes(200_000, 3);
    let msgs = common::write_messages(11, 0, &data, 30_000, false);
    let length = c
        .write_block(tokio_stream::iter(msgs))
        .await
        .expect("finalized anyway")
        .into_inner()
        .length;
    assert_eq!(length, data.len() as u64);
    assert_eq!(read(&mut c, 11, 0, 0, 0).await.expect("read"), data);
    server.stop().await;
}

#[tokio::test]
async fn a_writer_that_dies_mid_stream_leaves_a_finalized_block_of_the_bytes_that_arrived() {
    let server = Blockserver::start(1, |_| {}).await;
    let mut c = server.client().await;
    let data = bytes(3 * 100_000, 4);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut writer = c.clone();
    let call = tokio::spawn(async move {
        writer
            .write_block(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for m in common::write_messages(12, 1, &data, 100_000, false) {
        tx.send(m).await.expect("send");
    }
    // Wait until every byte sent is on the server's disk (in its temporary file), then kill
    // the writer: its RPC is cancelled and the stream reset, without finalize.
    eventually("the bytes reach the temporary file", || {
        let files = server.temporaries();
        let size: u64 = files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let done = size == data.len() as u64;
        async move { done.then_some(()) }
    })
    .await;
    call.abort();
    let _ = call.await;
    drop(tx);
    let length = eventually("the block is finalized", || {
        let mut c = c.clone();
        async move { info(&mut c, 12, 1).await.ok() }
    })
    .await;
    assert_eq!(length, data.len() as u64);
    assert_eq!(read(&mut c, 12, 1, 0, 0).await.expect("read"), data);
    assert!(server.temporaries().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_flipped_byte_on_disk_fails_the_read_as_corrupt_and_is_reported() {
    let meta = RecordingMeta::default();
    let (meta_addr, _meta_stop) = meta.start().await;
    let server = Blockserver::start(1, |c| {
        c.id = 42;
        c.metaservers = vec![meta_addr.clone()];
    })
    .await;
    let mut c = server.client().await;
    let data = bytes(3 * MIB, 5);
    write(&mut c, 13, 3, &data, 512 * 1024)
        .await
        .expect("write");
    let path = server.block_file(13, 3).expect("data file");
    let mut raw = std::fs::read(&path).expect("raw");
    raw[2 * MIB + 77] ^= 0x01;
    std::fs::write(&path, raw).expect("flip a byte");

    let err = read(&mut c, 13, 3, 0, 0).await.expect_err("corrupt");
    assert_eq!(err.code(), Code::DataLoss);
    assert_eq!(kind(&err), pb::ErrorKind::CorruptBlock);
    // Bytes away from the damaged chunk still read.
    assert_eq!(
        read(&mut c, 13, 3, 0, MIB as u64)
            .await
            .expect("intact part"),
        data[..MIB]
    );
    let report = eventually("the corruption reaches the metaserver", || {
        let r = meta.seen().corrupt.first().cloned();
        async move { r }
    })
    .await;
    assert_eq!((report.group, report.index, report.node_id), (13, 3, 42));
    assert!(!report.reason.is_empty());
    server.stop().await;
}

/// Corruption in a block nobody reads is found by the block scanner and reported as a
/// failed read would report it; an intact block never is, however often it is scanned.
#[tokio::test]
async fn the_block_scanner_reports_a_flipped_byte_nobody_reads() {
    let meta = RecordingMeta::default();
    let (meta_addr, _meta_stop) = meta.start().await;
    let server = Blockserver::start(1, |c| {
        c.id = 42;
        c.metaservers = vec![meta_addr.clone()];
        c.scan_bytes_per_sec = 64 << 20;
        c.scan_period_secs = 1;
    })
    .await;
    let mut c = server.client().await;
    for group in [21, 22] {
        write(&mut c, group, 1, &bytes(2 * MIB + 5, group as u8), MIB)
            .await
            .expect("write");
    }
    let path = server.block_file(22, 1).expect("data file");
    let mut raw = std::fs::read(&path).expect("raw");
    raw[MIB + 3] ^= 0x40;
    std::fs::write(&path, raw).expect("flip a byte");

    // Reported at every pass while it stays: two reports mean a whole pass after the first.
    let reports = eventually("two passes report the corrupt block", || {
        let seen = meta.seen().corrupt.clone();
        async move { (seen.len() >= 2).then_some(seen) }
    })
    .await;
    for r in &reports {
        assert_eq!((r.group, r.index, r.node_id), (22, 1, 42), "{r:?}");
        assert!(r.reason.contains("block scanner"), "{}", r.reason);
    }
    // Scanning read nothing wrong into the intact block, nor changed the bad one.
    assert_eq!(
        read(&mut c, 21, 1, 0, 0).await.expect("intact block"),
        bytes(2 * MIB + 5, 21)
    );
    assert_eq!(
        kind(&read(&mut c, 22, 1, 0, 0).await.expect_err("still corrupt")),
        pb::ErrorKind::CorruptBlock
    );
    server.stop().await;
}

#[tokio::test]
async fn a_volume_without_room_above_its_reserve_refuses_writes_and_keeps_nothing() {
    let server = Blockserver::start(2, |c| c.reserved_bytes = u64::MAX / 4).await;
    let mut c = server.client().await;
    for (group, data) in [(20, bytes(100_000, 6)), (21, Vec::new())] {
        let err = write(&mut c, group, 0, &data, 10_000)
            .await
            .expect_err("full");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(kind(&err), pb::ErrorKind::NoSpace);
        let missing = info(&mut c, group, 0).await.expect_err("nothing visible");
        assert_eq!(kind(&missing), pb::ErrorKind::BlockNotFound);
    }
    assert!(server.temporaries().is_empty());
    server.stop().await;
}

/// A token of the test caller for `group` at `generation`.
fn token_at(group: u64, generation: u64, modes: &[Mode]) -> Vec<u8> {
    common::token_for(
        Claims::new(
            &common::test_caller(),
            GroupId(group),
            Indices::ALL,
            modes,
            0,
            u64::MAX / 4,
        )
        .at_generation(Generation(generation)),
    )
}

async fn read_at(
    c: &mut BlockDataClient<Channel>,
    group: u64,
    generation: u64,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = c
        .read_block(pb::ReadBlockRequest {
            block: Some(pb::BlockRef { group, index: 0 }),
            offset: 0,
            length: 0,
            token: token_at(group, generation, &[Mode::Read]),
            checksums: true,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.extend_from_slice(&m.data);
    }
    Ok(out)
}

async fn recover(
    c: &mut BlockDataClient<Channel>,
    group: u64,
    generation: u64,
) -> Result<pb::RecoverBlockResponse, tonic::Status> {
    let token = common::token_for(
        Claims::for_nodes(GroupId(group), &[Mode::Recover], 0, u64::MAX / 4)
            .at_generation(Generation(generation)),
    );
    Ok(c.recover_block(pb::RecoverBlockRequest {
        block: Some(pb::BlockRef { group, index: 0 }),
        token,
    })
    .await?
    .into_inner())
}

/// Issue 17, generation stamps: lease recovery ends the open stream of a writer that is cut
/// off (what arrived is finalized), restamps the block with the group's next generation, and
/// from then on the block is served only to tokens of that generation or older; the stale
/// writer's stream is over and its retry finds the block there. A block stamped newer than a
/// recovery asks is left alone; reads with a token of a newer generation than the copy's are
/// refused (a copy the recovery did not reach).
#[tokio::test]
async fn recovery_ends_the_open_stream_and_restamps_the_block() {
    let server = Blockserver::start(1, |_| {}).await;
    let mut c = server.client().await;
    let data = bytes(150_000, 6);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut writer = c.clone();
    let call = tokio::spawn(async move {
        writer
            .write_block(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let mut msgs = common::write_messages(21, 0, &data, 50_000, false);
    msgs[0].token = token_at(21, 1, &[Mode::Write]);
    for m in msgs {
        tx.send(m).await.expect("send");
    }
    eventually("the bytes reach the temporary file", || {
        let size: u64 = server
            .temporaries()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let want = data.len() as u64;
        async move { (size == want).then_some(()) }
    })
    .await;
    // The writer is alive and silent (its host cut off): nothing is finalized yet.
    assert_eq!(
        info(&mut c, 21, 0).await.map_err(|s| s.code()),
        Err(Code::NotFound)
    );
    let r = recover(&mut c, 21, 2).await.expect("recover");
    assert_eq!((r.length, r.generation), (data.len() as u64, 2));
    // The stale writer's stream was ended (what had arrived was kept for the recovery), and
    // the writer is told so: its block is not the one it was writing.
    let ended = call.await.expect("joined").expect_err("ended by recovery");
    assert_eq!(
        (ended.code(), kind(&ended)),
        (Code::Aborted, pb::ErrorKind::StaleGeneration)
    );
    assert!(
        tx.send(pb::WriteBlockRequest {
            data: vec![1; 10],
            ..Default::default()
        })
        .await
        .is_err(),
        "nothing more is taken from the stale writer"
    );
    // Its retry with its old token finds the recovered block.
    let mut retry = common::write_messages(21, 0, &data, 50_000, true);
    retry[0].token = token_at(21, 1, &[Mode::Write]);
    let e = c
        .write_block(tokio_stream::iter(retry))
        .await
        .expect_err("the block is there");
    assert_eq!(e.code(), Code::AlreadyExists);

    assert_eq!(read_at(&mut c, 21, 2).await.expect("current"), data);
    assert_eq!(read_at(&mut c, 21, 1).await.expect("older token"), data);
    let e = read_at(&mut c, 21, 3).await.expect_err("stale copy");
    assert_eq!(
        (e.code(), kind(&e)),
        (Code::NotFound, pb::ErrorKind::StaleGeneration)
    );
    // Again at the same generation: done already. At an older one: refused, unchanged.
    assert_eq!(recover(&mut c, 21, 2).await.expect("again").generation, 2);
    let e = recover(&mut c, 21, 1).await.expect_err("older");
    assert_eq!(
        (e.code(), kind(&e)),
        (Code::FailedPrecondition, pb::ErrorKind::StaleGeneration)
    );
    // A block that is not here, with no stream open: not found.
    let e = recover(&mut c, 22, 2).await.expect_err("absent");
    assert_eq!(e.code(), Code::NotFound);
    // A recovery token opens no write (nor read).
    let mut planted = common::write_messages(23, 0, &data, 50_000, true);
    planted[0].token = common::token_for(
        Claims::for_nodes(GroupId(23), &[Mode::Recover], 0, u64::MAX / 4)
            .at_generation(Generation(2)),
    );
    let e = c
        .write_block(tokio_stream::iter(planted))
        .await
        .expect_err("a recovery token");
    assert_eq!(kind(&e), pb::ErrorKind::InvalidBlockToken);
    // A read token cannot recover.
    let e = c
        .recover_block(pb::RecoverBlockRequest {
            block: Some(pb::BlockRef {
                group: 21,
                index: 0,
            }),
            token: token_at(21, 9, &[Mode::Read]),
        })
        .await
        .expect_err("read token");
    assert_eq!(kind(&e), pb::ErrorKind::InvalidBlockToken);
    assert_eq!(read_at(&mut c, 21, 2).await.expect("unchanged"), data);
    server.stop().await;
}
