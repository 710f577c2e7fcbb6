//! The FUSE mount (`metactl mount DIR`, crate `raftfs-fuse`) through the tools users have:
//! `tar`, `cp`, `rsync`, `find`, `du`, `sha256sum` on a tree of files in a replicated and an
//! RS-6-3 directory; the POSIX behaviour a mount promises and the errno of what it refuses;
//! a subset of pjdfstest (the Rust rewrite, from crates.io) with every excluded case named
//! and why; and fsx's reads over a file written through the mount. The tools come from
//! `scripts/install-deps.sh`. Skipped, with a message, only where `/dev/fuse` is absent.
//!
//! `RAFTFS_FUSE_FILES` sets the tree's size (default 200; `bench/fuse.sh` runs 10,000).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{LocalCluster, content, get_file, put_file};
use raftfs_client::Client;

/// Whether this machine can mount FUSE file systems; says why not when it cannot.
fn fuse_usable() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    eprintln!("SKIPPED: /dev/fuse is absent on this machine: no FUSE mount can be made here");
    false
}

/// A tool `scripts/install-deps.sh` installs (in ~/.cargo/bin or on the PATH).
fn tool(name: &str) -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin").join(name));
    if let Some(p) = cargo_bin.filter(|p| p.exists()) {
        return p;
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{name} is missing: run scripts/install-deps.sh (it installs it)"
    );
    PathBuf::from(path)
}

/// A mount by a `metactl mount` process, unmounted when dropped.
struct Mount {
    child: Child,
    dir: PathBuf,
}

impl Mount {
    fn start(cluster: &LocalCluster, dir: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(dir).expect("mount point");
        let mut child = Command::new(common::metactl_bin())
            .args(["--cluster", &cluster.dir_arg()])
            .args(extra)
            .arg("mount")
            .arg(dir)
            .arg("--allow-other")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start metactl mount");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the mount's first line");
        assert!(line.starts_with("mounted "), "metactl mount said {line:?}");
        Mount {
            child,
            dir: dir.to_owned(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        // A mount whose process died without unmounting is detached.
        if std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .contains(self.dir.to_str().unwrap_or("-"))
        {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Runs a shell command; its stdout.
fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail; {cmd}")])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{cmd}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file's SHA-256 under `dir`, by relative path.
fn manifest(dir: &Path) -> String {
    sh(&format!(
        "cd {} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum",
        dir.display()
    ))
}

/// A tree of `n` files in 1 + n/100 directories with a subdirectory each, of sizes from 0
/// to 20 KB, and one file of several stripes.
fn make_tree(root: &Path, n: usize) -> usize {
    let mut made = 0;
    for i in 0..n {
        let dir = root.join(format!("d{:03}", i / 100));
        let dir = if i % 4 == 0 { dir.join("sub") } else { dir };
        std::fs::create_dir_all(&dir).expect("mkdir");
        let len = [0, 1, 100, 4096, 5000, 20_000][i % 6];
        std::fs::write(dir.join(format!("f{i:05}")), content(len, i as u8)).expect("write");
        made += 1;
    }
    std::fs::write(root.join("big.bin"), content(20 << 20, 7)).expect("write");
    made + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_cp_rsync_find_du_and_sha256sum_work_on_a_tree_through_the_mount() {
    if !fuse_usable() {
        return;
    }
    let n: usize = std::env::var("RAFTFS_FUSE_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let cluster = LocalCluster::up(
        1,
        &["--observers", "0", "--blockservers", "9", "--racks", "3"],
    );
    for args in [
        &["fs", "mkdir", "-p", "/rep", "/rs"][..],
        &["ec", "set-policy", "/rs", "RS-6-3-1024k"],
    ] {
        let out = cluster.ctl(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    let files = make_tree(&src, n);
    let mount = Mount::start(&cluster, &work.path().join("mnt"), &[]);
    let want = manifest(&src);
    let local_du = sh(&format!(
        "cd {} && du -sb --apparent-size . | cut -f1",
        src.display()
    ));

    let copies = [
        (
            "/rs/tar",
            format!(
                "mkdir {0} && tar c -C {1} . | tar x -C {0}",
                "{dst}",
                src.display()
            ),
        ),
        ("/rep/cp", format!("cp -r {} {}", src.display(), "{dst}")),
        (
            "/rep/rsync",
            format!("rsync -a {}/ {}/", src.display(), "{dst}"),
        ),
    ];
    for (at, cmd) in &copies {
        let dst = mount.path(at);
        let started = std::time::Instant::now();
        sh(&cmd.replace("{dst}", dst.to_str().expect("utf8")));
        eprintln!("{at}: {files} files in {:?}", started.elapsed());
        let found = sh(&format!("find {} -type f | wc -l", dst.display()));
        assert_eq!(found.trim(), files.to_string(), "{at}: find");
        let du = sh(&format!(
            "cd {} && du -sb --apparent-size . | cut -f1",
            dst.display()
        ));
        // Directories count 4096 bytes each on both sides.
        assert_eq!(du, local_du, "{at}: du");
        assert_eq!(manifest(&dst), want, "{at}: sha256sum of every file");
    }
    // rsync -a kept modes and times: a second run finds nothing to change.
    let again = sh(&format!(
        "rsync -a --dry-run --itemize-changes {}/ {}/",
        src.display(),
        mount.path("/rep/rsync").display()
    ));
    assert_eq!(
        again.trim(),
        "",
        "rsync -a finds differences after a copy: {again}"
    );

    // The bytes are raftfs's: read back through the client crate, and copied back out.
    let client = cluster.client();
    let big = std::fs::read(src.join("big.bin")).expect("read");
    for at in ["/rs/tar/big.bin", "/rep/cp/big.bin"] {
        assert!(
            get_file(&client, at).await == big,
            "{at} through the client crate"
        );
    }
    let back = work.path().join("back");
    sh(&format!(
        "cp -r {} {}",
        mount.path("/rs/tar").display(),
        back.display()
    ));
    assert_eq!(manifest(&back), want, "copied back out of the mount");
}

/// The errno a failed call gives.
fn errno_of(r: std::io::Result<impl Sized>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mount_keeps_posix_promises_and_refuses_with_the_right_errno() {
    if !fuse_usable() {
        return;
    }
    let cluster = LocalCluster::up(1, &["--observers", "1", "--blockservers", "3"]);
    let work = tempfile::tempdir().expect("tempdir");
    let mount = Mount::start(
        &cluster,
        &work.path().join("mnt"),
        &["--read-mode", "observer"],
    );
    let m = |p: &str| mount.path(p);
    let client = cluster.client();

    // Read-your-own-writes through the mount while reads go to the observer: each file is
    // read back at once, through a fresh lookup.
    std::fs::create_dir(m("/own")).expect("mkdir");
    for i in 0..30 {
        let data = content(1000 + i, i as u8);
        std::fs::write(m(&format!("/own/f{i}")), &data).expect("write");
        assert_eq!(std::fs::read(m(&format!("/own/f{i}"))).expect("read"), data);
        std::fs::rename(m(&format!("/own/f{i}")), m(&format!("/own/g{i}"))).expect("rename");
        assert_eq!(
            std::fs::metadata(m(&format!("/own/g{i}")))
                .expect("stat")
                .len(),
            data.len() as u64
        );
    }

    // Appends continue a file; writes elsewhere than the end are refused.
    let f = m("/own/log");
    std::fs::write(&f, b"one\n").expect("write");
    let mut app = std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .expect("open");
    app.write_all(b"two\n").expect("append");
    drop(app);
    assert_eq!(std::fs::read(&f).expect("read"), b"one\ntwo\n");
    assert_eq!(
        get_file(&client, "/own/log").await,
        b"one\ntwo\n",
        "through the client"
    );
    {
        use std::os::unix::fs::FileExt;
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .expect("open");
        assert_eq!(
            errno_of(w.write_at(b"X", 1)),
            nix::libc::EOPNOTSUPP,
            "a write before the end"
        );
    }
    // Truncation: to 0 empties the file; other lengths are refused.
    let t = std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .expect("open");
    assert_eq!(errno_of(t.set_len(3)), nix::libc::EOPNOTSUPP);
    t.set_len(0).expect("truncate to 0");
    drop(t);
    assert_eq!(std::fs::metadata(&f).expect("stat").len(), 0);
    // O_TRUNC replaces the content.
    std::fs::write(&f, b"fresh").expect("overwrite");
    assert_eq!(std::fs::read(&f).expect("read"), b"fresh");

    // Errors a local disk gives.
    assert_eq!(errno_of(std::fs::read(m("/nope"))), nix::libc::ENOENT);
    assert_eq!(errno_of(std::fs::create_dir(m("/own"))), nix::libc::EEXIST);
    assert_eq!(
        errno_of(std::fs::remove_dir(m("/own"))),
        nix::libc::ENOTEMPTY
    );
    assert_eq!(
        errno_of(std::fs::hard_link(&f, m("/own/hard"))),
        nix::libc::EPERM
    );
    assert_eq!(
        errno_of(std::fs::write(m(&format!("/{}", "n".repeat(256))), b"")),
        nix::libc::ENAMETOOLONG
    );
    std::fs::write(m(&format!("/{}", "n".repeat(255))), b"").expect("a 255-byte name");
    let fifo = sh(&format!("mkfifo {} 2>&1 || true", m("/fifo").display()));
    assert!(fifo.contains("Operation not permitted"), "mkfifo: {fifo}");

    // Modes, owners and times land in raftfs, as its own clients see them.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    sh(&format!("chown nobody:nogroup {}", f.display()));
    let st = client.stat("/own/log").await.expect("stat");
    assert_eq!(
        (st.permission & 0o7777, st.owner.as_str(), st.group.as_str()),
        (0o640, "nobody", "nogroup")
    );
    sh(&format!("touch -m -d @1600000000 {}", f.display()));
    assert_eq!(
        client.stat("/own/log").await.expect("stat").mtime_ms,
        1_600_000_000_000
    );
    // cp -p sets the times before it closes the copy: they outlast its completion.
    let local = work.path().join("old.txt");
    std::fs::write(&local, b"old").expect("write");
    sh(&format!(
        "touch -m -d @1500000000 {0} && cp -p {0} {1}",
        local.display(),
        m("/own/kept").display()
    ));
    assert_eq!(
        client.stat("/own/kept").await.expect("stat").mtime_ms,
        1_500_000_000_000
    );
    // Overwriting a file (O_TRUNC) keeps its owner, group and mode.
    sh(&format!(
        "chown nobody:nogroup {0} && chmod 664 {0} && cp {1} {0}",
        m("/own/kept").display(),
        local.display()
    ));
    let kept = client.stat("/own/kept").await.expect("stat");
    assert_eq!(
        (
            kept.owner.as_str(),
            kept.group.as_str(),
            kept.permission & 0o7777
        ),
        ("nobody", "nogroup", 0o664)
    );

    // The kernel holds other local users to the modes (default_permissions), and a file one
    // of them makes is theirs.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    sh(&format!("chown root:root {}", f.display()));
    let denied = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&f)
        .output()
        .expect("setpriv");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{denied:?}"
    );
    std::fs::set_permissions(m("/own"), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    sh(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups touch {}",
        m("/own/theirs").display()
    ));
    assert_eq!(
        client.stat("/own/theirs").await.expect("stat").owner,
        "nobody"
    );

    // Extended attributes.
    sh(&format!("setfattr -n user.color -v blue {}", f.display()));
    assert!(sh(&format!("getfattr -d {}", f.display())).contains("user.color=\"blue\""));
    let x = client.get_xattrs("/own/log", &[]).await.expect("xattrs");
    assert_eq!(x, vec![("user.color".to_owned(), b"blue".to_vec())]);
    // What the kernel and ls ask of every file, answered by the mount: none.
    let label = sh(&format!(
        "getfattr -n security.selinux {} 2>&1 || true",
        f.display()
    ));
    assert!(label.contains("No such attribute"), "{label}");
    sh(&format!("setfattr -x user.color {}", f.display()));
    let gone = sh(&format!(
        "getfattr -n user.color {} 2>&1 || true",
        f.display()
    ));
    assert!(gone.contains("No such attribute"), "{gone}");

    // Symbolic links.
    std::os::unix::fs::symlink("log", m("/own/link")).expect("symlink");
    assert_eq!(
        std::fs::read_link(m("/own/link")).expect("readlink"),
        Path::new("log")
    );
    assert_eq!(
        std::fs::read(m("/own/link")).expect("read through"),
        b"fresh"
    );

    // What another client writes shows once the kernel's attribute timeout (1s) passes.
    put_file(&client, "/own/theirs2", "", b"from elsewhere").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        std::fs::read(m("/own/theirs2")).expect("read"),
        b"from elsewhere"
    );
    let listed: Vec<String> = std::fs::read_dir(m("/own"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(listed.contains(&"theirs2".to_owned()), "{listed:?}");

    // df shows the blockservers' capacity.
    let df = sh(&format!(
        "df -B1 --output=size {} | tail -1",
        mount.dir.display()
    ));
    assert!(df.trim().parse::<u64>().expect("size") > 0, "df: {df}");
}

/// pjdfstest cases raftfs cannot pass, and why: a failure of any other case fails the test.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "link::",
        "no hard links (HDFS has none): link(2) gives EPERM",
    ),
    ("to_multiply_linked", "no hard links"),
    ("preserve_metadata", "made with hard links"),
    (
        "mkfifo::",
        "no FIFOs, devices or sockets: only files, directories and symlinks",
    ),
    ("mknod::", "mknod of FIFOs and devices (raftfs holds none)"),
    ("::fifo", "no FIFOs"),
    ("::char", "no character devices"),
    ("::block", "no block devices"),
    ("::socket", "no sockets"),
    (
        "ctime",
        "no change time: raftfs (as HDFS) keeps none, st_ctime shows the mtime",
    ),
    (
        "truncate::shrink_not_empty",
        "files are written front to back: only emptied",
    ),
    (
        "truncate::extend_file_shrink_sparse",
        "files are written front to back: no holes",
    ),
    (
        "open::interact_2gb",
        "a write at 2 GB into an empty file: no holes",
    ),
    (
        "unlink::open_file_not_freed",
        "deleting a file frees it at once, as in HDFS",
    ),
    (
        "rename::updates_link_parent",
        "directories show 2 links (no subdirectory count)",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pjdfstest_passes_but_for_the_named_exclusions_and_fsx_reads_verify() {
    if !fuse_usable() {
        return;
    }
    let pjdfstest = tool("pjdfstest");
    let fsx = tool("fsx");
    let cluster = LocalCluster::up(1, &["--observers", "0", "--blockservers", "3"]);
    let work = tempfile::tempdir().expect("tempdir");
    let mount = Mount::start(&cluster, &work.path().join("mnt"), &[]);

    // pjdfstest: every syscall group, run as root with two local users to switch to.
    let config = work.path().join("pjdfstest.toml");
    std::fs::write(
        &config,
        "[features]\nutimensat = {}\nutime_now = {}\n[settings]\nnaptime = 0.01\n\
         allow_remount = false\n[dummy_auth]\n\
         entries = [[\"nobody\", \"nogroup\"], [\"daemon\", \"daemon\"]]\n",
    )
    .expect("config");
    let at = mount.path("/pjd");
    std::fs::create_dir(&at).expect("mkdir");
    let out = Command::new(&pjdfstest)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(&at)
        .current_dir(&at)
        .output()
        .expect("run pjdfstest");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut passed, mut failed, mut excluded) = (0, Vec::new(), 0);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(outcome), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if !name.contains("::") {
            continue;
        }
        match outcome {
            "ok" => passed += 1,
            "FAILED" if EXCLUDED.iter().any(|(p, _)| name.contains(p)) => excluded += 1,
            "FAILED" => failed.push(name.to_owned()),
            _ => {}
        }
    }
    eprintln!("pjdfstest: {passed} passed, {excluded} excluded failures");
    assert!(
        failed.is_empty(),
        "pjdfstest cases failed: {failed:?}\n{text}"
    );
    assert!(
        passed >= 150,
        "only {passed} pjdfstest cases passed:\n{text}"
    );

    // fsx: it writes its file front to back (its zero fill), then reads it at random
    // offsets with pread, mmap, sendfile and fadvise, checking every byte. (fsx's own
    // writes go to random offsets, which raftfs refuses: it runs in block mode, read only.)
    let fsx_config = work.path().join("fsx.toml");
    std::fs::write(
        &fsx_config,
        "flen = 4194304\nblockmode = true\nnosizechecks = true\n\
         [opsize]\nmax = 262144\nmin = 1\nalign = 1\n\
         [weights]\nclose_open = 0\nread = 10\nwrite = 0\nmapread = 10\nmapwrite = 0\n\
         truncate = 0\ninvalidate = 0\nfsync = 1\nfdatasync = 1\nsendfile = 5\n\
         posix_fadvise = 2\n",
    )
    .expect("fsx config");
    let target = mount.path("/fsx.bin");
    std::fs::write(&target, b"").expect("create");
    let out = Command::new(&fsx)
        .arg("-f")
        .arg(&fsx_config)
        .args(["-N", "2000", "-S", "7", "-P"])
        .arg(work.path())
        .arg(&target)
        .output()
        .expect("run fsx");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("A-OK"), "fsx: {said}");
    let client: Client = cluster.client();
    assert_eq!(client.stat("/fsx.bin").await.expect("stat").length, 4 << 20);
}
