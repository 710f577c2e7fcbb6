//! Mounting: the mount is made, the kernel's requests are served on the session's thread
//! until the directory is unmounted (`umount`, `fusermount -u`) or `shutdown` resolves (an
//! interrupt), when the mount unmounts itself. Files still open for writing are completed
//! before `serve` returns.

use std::future::Future;
use std::io;
use std::path::Path;

use fuser::{Config, MountOption, Session, SessionACL};
use raftfs_client::Client;

use crate::fs::{MountOptions, RaftFs};

/// The kernel's mount options for `options`.
fn config(options: &MountOptions) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("raftfs".into()),
        MountOption::Subtype("raftfs".into()),
        // The kernel checks each caller against the modes and owners raftfs keeps; raftfs
        // checks the mount's own user.
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        if options.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.acl = if options.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config
}

/// Mounts raftfs at `mountpoint`, calls `mounted` once the kernel serves it, and serves it
/// until it is unmounted or `shutdown` resolves.
pub async fn serve(
    client: Client,
    mountpoint: &Path,
    options: MountOptions,
    mounted: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let rt = tokio::runtime::Handle::current();
    let config = config(&options);
    let fs = RaftFs::new(client, options, rt);
    let live = fs.live();
    let mountpoint = mountpoint.to_owned();
    let mut session = tokio::task::spawn_blocking(move || Session::new(fs, &mountpoint, &config))
        .await
        .map_err(io::Error::other)??;
    let mut unmount = session.unmount_callable();
    mounted();
    let mut served = tokio::task::spawn_blocking(move || session.run());
    let result = tokio::select! {
        r = &mut served => r.map_err(io::Error::other)?,
        () = shutdown => {
            tracing::info!("unmounting");
            unmount.unmount()?;
            served.await.map_err(io::Error::other)?
        }
    };
    // Files still open for writing are completed by their tasks once the kernel is gone.
    let left = live.wait(WRITERS_AT_UNMOUNT).await;
    if left > 0 {
        tracing::warn!(
            left,
            "files still being completed at exit: they stay under construction until lease recovery"
        );
    }
    result
}

/// How long an unmount waits for open files to be completed.
const WRITERS_AT_UNMOUNT: std::time::Duration = std::time::Duration::from_secs(60);
