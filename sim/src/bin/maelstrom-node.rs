//! `maelstrom-node`: a raftfs member as a Maelstrom `lin-kv` node (`raftfs_sim::maelstrom`).
//!
//! ```sh
//! maelstrom test -w lin-kv --bin target/release/maelstrom-node --node-count 3 \
//!     --time-limit 30 --nemesis partition
//! ```
//!
//! Messages come one JSON object per line on stdin and go out on stdout; logs go to stderr.
//! Each node keeps its member's data under `RAFTFS_MAELSTROM_DIR` (default: a directory of
//! its own under the system's temporary directory, removed when the node exits cleanly).
//! `RUST_LOG` sets the log filter (default `warn,openraft=off`: openraft reports every lost
//! message as an error, and Maelstrom's partitions lose many).

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// The longest input line: a Raft message of the largest size a member sends, in base64,
/// and room for the envelope.
const MAX_LINE: usize = raftfs_metaserver::server::MAX_RAFT_MESSAGE / 3 * 4 + (1 << 20);

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,openraft=off")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> std::io::Result<()> {
    let (scratch, root) = match std::env::var_os("RAFTFS_MAELSTROM_DIR") {
        Some(dir) => (None, std::path::PathBuf::from(dir)),
        None => {
            let d = tempfile::Builder::new()
                .prefix("raftfs-maelstrom-")
                .tempdir()?;
            let p = d.path().to_owned();
            (Some(d), p)
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if out.write_all(line.as_bytes()).await.is_err()
                || out.write_all(b"\n").await.is_err()
                || out.flush().await.is_err()
            {
                break;
            }
        }
    });
    let node = raftfs_sim::maelstrom::Node::new(
        raftfs_sim::maelstrom::Wire::new(tx),
        root,
        raftfs_sim::maelstrom::NodeOptions::from_env(),
    );
    // A line longer than any message a member sends is refused before it is read whole.
    let codec = tokio_util::codec::LinesCodec::new_with_max_length(MAX_LINE);
    let mut lines = tokio_util::codec::FramedRead::new(tokio::io::stdin(), codec);
    // After a decoding error the stream yields one `None` that is not the end of the input.
    let mut after_error = false;
    loop {
        match lines.next().await {
            Some(Ok(line)) if !line.trim().is_empty() => node.handle_line(&line),
            Some(Ok(_)) => {}
            Some(Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded)) => {
                tracing::warn!(max = MAX_LINE, "ignored a line longer than any message");
                after_error = true;
            }
            Some(Err(tokio_util::codec::LinesCodecError::Io(e))) => return Err(e),
            None if after_error => after_error = false,
            None => break,
        }
    }
    // Maelstrom closes stdin at the end of a test: the member stops cleanly, what is queued
    // for stdout goes out, and only then is the data directory removed.
    node.stop().await;
    drop(node);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    drop(scratch);
    Ok(())
}
