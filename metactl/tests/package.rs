//! The Debian packages (issue 24), installed on this machine with `dpkg` as an operator
//! would: `scripts/package.sh` packages the binaries this test was built with (cargo-deb),
//! `dpkg -i` installs `raftfs-metaserver`, `raftfs-blockserver` and `raftfs-tools`, the
//! installed units are checked (`systemd-analyze verify`, and `security` for the
//! sandbox), the configuration in `/etc/raftfs` is edited for this host, the units are started
//! (by systemd where it is PID 1; otherwise their `ExecStart` is run as their `User` with
//! their `LimitNOFILE` and `UMask`), and the installed `metactl` writes a file and reads it
//! back. `dpkg -r` then leaves `/var/lib/raftfs` and the edited configuration in place; the
//! packages installed again serve the same file from it, and `dpkg --purge` still keeps it.
//!
//! Needs root (it installs packages and creates the `raftfs` user); it refuses to touch a
//! raftfs installation it did not make itself, and removes what it made when it ends.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PACKAGES: [&str; 3] = ["raftfs-metaserver", "raftfs-blockserver", "raftfs-tools"];
const UNITS: [&str; 2] = ["raftfs-metaserver", "raftfs-blockserver"];
const DATA: &str = "/var/lib/raftfs";
const CONF: &str = "/etc/raftfs";
/// Written by this test into the data directory it installs: a data directory without it
/// belongs to someone else, and this test stops rather than touch it.
const MARKER: &str = "/var/lib/raftfs/.made-by-package-test";
/// Exposure as `systemd-analyze security --threshold` counts it (tenths): 2.0, "OK".
const MOST_EXPOSURE: u32 = 20;

#[test]
fn packages_install_serve_and_keep_their_data_when_removed() {
    if let Some(why) = cannot_install() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let debs = build_packages(work.path());
    let mut host = Host::claim();

    run_ok("dpkg", &["-i"], &debs);
    // At once: whatever fails next, the end of the test (or the next run) removes it.
    std::fs::write(MARKER, b"").expect("marker");
    check_installed();
    check_units();
    let ports = Ports::pick();
    configure(&ports);

    let data = common::content(3 << 20, 7);
    let local = work.path().join("in");
    std::fs::write(&local, &data).expect("write local file");
    host.start_units();
    let meta = ports.meta();
    until_ok("put", || {
        metactl(&meta, &["fs", "mkdir", "-p", "/pkg"])?;
        let local = local.to_str().expect("utf-8 path");
        metactl(
            &meta,
            &[
                "fs",
                "put",
                "-f",
                "--policy",
                "REPLICATED-1",
                local,
                "/pkg/f",
            ],
        )
    });
    assert_eq!(read_back(&meta, work.path()), data, "read after write");
    host.stop_units();

    run_ok("dpkg", &["-r"], &PACKAGES);
    for gone in [
        "/usr/bin/metaserver",
        "/usr/bin/blockserver",
        "/usr/bin/metactl",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg -r");
    }
    assert!(
        !unit_path("raftfs-metaserver").exists(),
        "unit left after dpkg -r"
    );
    check_data_kept();
    let edited = std::fs::read_to_string(format!("{CONF}/metaserver.toml")).expect("conffile");
    assert!(
        edited.contains(&ports.meta()),
        "dpkg -r keeps the edited configuration"
    );

    // The same packages again, on the data the removal kept: the file is still there.
    run_ok("dpkg", &["-i"], &debs);
    host.start_units();
    assert_eq!(read_back(&meta, work.path()), data, "read after reinstall");
    let fsck = until_ok("fsck", || metactl(&meta, &["fsck", "--json", "/"]));
    let fsck: serde_json::Value = serde_json::from_str(&fsck).expect("fsck json");
    assert_eq!(fsck["missing"], 0, "fsck after reinstall: {fsck}");
    assert_eq!(fsck["healthy"], 1, "fsck after reinstall: {fsck}");
    host.stop_units();

    run_ok("dpkg", &["--purge"], &PACKAGES);
    assert!(
        !Path::new(&format!("{CONF}/metaserver.toml")).exists(),
        "purge removes the configuration"
    );
    check_data_kept();
}

/// Why packages cannot be installed here, if they cannot.
fn cannot_install() -> Option<String> {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if uid != Some(0) {
        return Some("installing packages needs root (dpkg -i); CI runs as root".into());
    }
    if !Path::new("/var/lib/dpkg/status").exists() {
        return Some("this machine has no dpkg database: not a Debian system".into());
    }
    None
}

/// `scripts/package.sh --no-build` on the binaries this test's profile built (the
/// workspace's `cargo test` builds every binary the packages hold).
fn build_packages(out: &Path) -> Vec<String> {
    let metactl = Path::new(common::metactl_bin());
    let profile_dir = metactl
        .parent()
        .and_then(Path::file_name)
        .and_then(|d| d.to_str())
        .expect("profile directory");
    let profile = if profile_dir == "debug" {
        "dev"
    } else {
        profile_dir
    };
    // The target directory this test was built in, whatever the environment says.
    let target_dir = metactl
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let root = repository();
    let started = Instant::now();
    let output = Command::new(root.join("scripts/package.sh"))
        .args(["--no-build", "--profile", profile, "--out"])
        .arg(out)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(&root)
        .output()
        .expect("run scripts/package.sh");
    assert!(
        output.status.success(),
        "scripts/package.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut debs: Vec<String> = std::fs::read_dir(out)
        .expect("read packages")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .map(|p| p.display().to_string())
        .collect();
    debs.sort();
    eprintln!("packaged {debs:?} in {:?}", started.elapsed());
    for package in PACKAGES {
        assert!(
            debs.iter().any(|d| d.contains(&format!("/{package}_"))),
            "{package} not built: {debs:?}"
        );
    }
    debs
}

/// The repository this test runs in (as `cargo test` gives it at run time: the directory
/// baked in at compile time may be another clone's that shared the target directory).
fn repository() -> PathBuf {
    let crate_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(crate_dir)
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// What the installation put in place: binaries, conffiles, units, the user and the data
/// directories with their owner and mode.
fn check_installed() {
    for bin in ["metaserver", "blockserver", "metactl", "loadgen"] {
        let path = format!("/usr/bin/{bin}");
        let mode = std::fs::metadata(&path).expect(&path).mode();
        assert_eq!(mode & 0o777, 0o755, "{path} mode");
    }
    let conffiles = run_ok(
        "dpkg-query",
        &["-W", "-f=${Conffiles}\n"],
        &["raftfs-metaserver", "raftfs-blockserver"],
    );
    for conf in ["metaserver.toml", "blockserver.toml"] {
        assert!(
            conffiles.contains(&format!("{CONF}/{conf}")),
            "{conf} is a conffile: {conffiles}"
        );
    }
    let dashboard = "/usr/share/doc/raftfs-tools/examples/grafana/raftfs.json";
    assert!(Path::new(dashboard).exists(), "{dashboard}");
    let passwd = run_ok("getent", &["passwd"], &["raftfs"]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid < 1000, "raftfs is a system user: {passwd}");
    assert_eq!(fields[5], DATA, "home");
    for dir in [DATA, "/var/lib/raftfs/meta", "/var/lib/raftfs/block"] {
        let meta = std::fs::metadata(dir).expect(dir);
        assert_eq!(meta.uid(), uid, "{dir} owned by raftfs");
        assert_eq!(meta.mode() & 0o777, 0o750, "{dir} mode");
    }
}

fn unit_path(unit: &str) -> PathBuf {
    ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .map(|d| Path::new(d).join(format!("{unit}.service")))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(format!("/lib/systemd/system/{unit}.service")))
}

/// The installed units: valid for systemd, run as `raftfs` with a high `LimitNOFILE`, and
/// sandboxed (`systemd-analyze security` reads the unit file, no running systemd needed).
fn check_units() {
    for unit in UNITS {
        let path = unit_path(unit);
        let service = Unit::read(&path);
        assert_eq!(service.get("User"), Some("raftfs"), "{unit}");
        assert_eq!(service.get("ProtectSystem"), Some("strict"), "{unit}");
        assert_eq!(service.get("ReadWritePaths"), Some(DATA), "{unit}");
        let nofile: u64 = service
            .get("LimitNOFILE")
            .and_then(|v| v.parse().ok())
            .expect("LimitNOFILE");
        assert!(nofile >= 1 << 20, "{unit} LimitNOFILE {nofile}");
        assert!(
            service.exec_start()[0].starts_with("/usr/bin/"),
            "{unit} ExecStart"
        );
        assert!(
            Path::new("/usr/bin/systemd-analyze").exists(),
            "systemd-analyze is missing: scripts/install-deps.sh installs Debian's systemd"
        );
        let unit_file = path.to_str().expect("utf-8");
        run_ok("systemd-analyze", &["verify"], &[unit_file]);
        let threshold = format!("--threshold={MOST_EXPOSURE}");
        let report = run_ok(
            "systemd-analyze",
            &["security", "--offline=true", &threshold, "--json=short"],
            &[unit_file],
        );
        let checks: Vec<serde_json::Value> = serde_json::from_str(&report).expect("json");
        let set = |field: &str| {
            checks
                .iter()
                .find(|c| c["json_field"] == field)
                .and_then(|c| c["set"].as_bool())
        };
        for field in [
            "UserOrDynamicUser",
            "NoNewPrivileges",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "CapabilityBoundingSet_CAP_SYS_ADMIN",
            "SystemCallFilter_privileged",
            "MemoryDenyWriteExecute",
        ] {
            assert_eq!(set(field), Some(true), "{unit}: {field}");
        }
    }
}

/// The `[Service]` settings of a unit file (the last value of a key wins, as in systemd for
/// the keys read here).
struct Unit(BTreeMap<String, String>);

impl Unit {
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).expect("unit file");
        let mut section = "";
        let mut keys = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[Service]"
                && !line.starts_with('#')
                && let Some((k, v)) = line.split_once('=')
            {
                keys.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        Self(keys)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `ExecStart` split into words (the units quote nothing).
    fn exec_start(&self) -> Vec<&str> {
        self.get("ExecStart")
            .expect("ExecStart")
            .split_whitespace()
            .collect()
    }
}

/// Four free loopback ports: the metaserver's and the blockserver's RPC and metrics.
struct Ports([u16; 4]);

impl Ports {
    fn pick() -> Self {
        let listeners: Vec<std::net::TcpListener> = (0..4)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
            .collect();
        let port = |i: usize| listeners[i].local_addr().expect("addr").port();
        Self([port(0), port(1), port(2), port(3)])
    }

    fn meta(&self) -> String {
        format!("127.0.0.1:{}", self.0[0])
    }

    fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.0[i])
    }
}

/// Edits the installed configuration as an operator does for a one-host cluster: this
/// host's addresses, the one initial member, and no TLS (the example asks for mutual TLS
/// with certificates this host does not have). The data directories stay the packaged ones.
fn configure(ports: &Ports) {
    let mut meta = read_conf("metaserver.toml");
    assert_eq!(
        meta["data-dir"].as_str(),
        Some("/var/lib/raftfs/meta"),
        "packaged data-dir"
    );
    meta.insert("listen-addr".into(), ports.meta().into());
    meta.insert("advertise-addr".into(), ports.meta().into());
    meta.insert("metrics-addr".into(), ports.addr(1).into());
    let mut member = toml::Table::new();
    member.insert("id".into(), 1.into());
    member.insert("addr".into(), ports.meta().into());
    meta.insert(
        "initial-members".into(),
        toml::Value::Array(vec![member.into()]),
    );
    meta.remove("security");
    write_conf("metaserver.toml", &meta);

    let mut block = read_conf("blockserver.toml");
    let dirs = block["data-dirs"].as_array().expect("data-dirs");
    assert_eq!(dirs.len(), 1, "packaged data-dirs");
    assert_eq!(dirs[0].as_str(), Some("/var/lib/raftfs/block"));
    block.insert("listen".into(), ports.addr(2).into());
    block.insert("advertise".into(), ports.addr(2).into());
    block.insert("metrics-addr".into(), ports.addr(3).into());
    block.insert(
        "metaservers".into(),
        toml::Value::Array(vec![ports.meta().into()]),
    );
    // The example keeps 10 GiB free on every volume; a CI disk may have less.
    block.insert("reserved-bytes".into(), (64 << 20).into());
    block.remove("security");
    write_conf("blockserver.toml", &block);
}

fn read_conf(name: &str) -> toml::Table {
    let text = std::fs::read_to_string(format!("{CONF}/{name}")).expect("installed config");
    text.parse().expect("installed config parses")
}

fn write_conf(name: &str, table: &toml::Table) {
    let text = toml::to_string(table).expect("config");
    std::fs::write(format!("{CONF}/{name}"), text).expect("write config");
}

/// The data the removal must keep: the metaserver's journal and namespace, and the
/// blockserver's blocks, still owned by `raftfs`.
fn check_data_kept() {
    let meta = Path::new("/var/lib/raftfs/meta");
    assert!(
        meta.join("log").is_dir() && meta.join("sm").is_dir(),
        "journal and namespace kept in {}",
        meta.display()
    );
    let blocks = common::finalized_files(Path::new("/var/lib/raftfs/block"));
    assert!(!blocks.is_empty(), "blocks kept in /var/lib/raftfs/block");
}

fn read_back(meta: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("out");
    let local = out.to_str().expect("utf-8 path").to_string();
    until_ok("get", || {
        let _ = std::fs::remove_file(&out);
        metactl(meta, &["fs", "get", "/pkg/f", &local])
    });
    std::fs::read(&out).expect("read local copy")
}

/// The installed `metactl`, as the superuser the packaged configuration names.
fn metactl(meta: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("/usr/bin/metactl")
        .args(["--meta", meta, "--user", "raftfs", "--timeout", "5s"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Retries `f` for up to a minute (the units start, elect and register meanwhile).
fn until_ok(what: &str, mut f: impl FnMut() -> Result<String, String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f() {
            Ok(out) => return out,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn run_ok(program: &str, args: &[&str], more: &[impl AsRef<str>]) -> String {
    let out = run(program, args, more);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(program: &str, args: &[&str], more: &[impl AsRef<str>]) -> Output {
    Command::new(program)
        .args(args)
        .args(more.iter().map(AsRef::as_ref))
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Whether dpkg has anything of `package` (installed, or its configuration left).
fn installed(package: &str) -> bool {
    let out = run("dpkg-query", &["-W", "-f=${db:Status-Status}"], &[package]);
    out.status.success() && out.stdout != b"not-installed"
}

/// This machine, for the length of the test: the units it runs, and what it removes at the
/// end (the packages, the data directory, the user if it made it).
struct Host {
    user_existed: bool,
    /// The units' processes when systemd is not PID 1.
    running: Vec<(&'static str, Child)>,
    systemd: bool,
}

impl Host {
    /// Refuses a machine where raftfs is installed or has data that this test did not make;
    /// clears what an earlier run of it left.
    fn claim() -> Self {
        let leftover = PACKAGES.iter().any(|p| installed(p)) || Path::new(DATA).exists();
        if leftover {
            assert!(
                Path::new(MARKER).exists(),
                "raftfs is installed on this machine (or {DATA} exists) and this test did not \
                 install it: not touching it"
            );
            eprintln!("clearing what an earlier run of this test left");
            let _ = run("dpkg", &["--purge"], &PACKAGES);
            let _ = std::fs::remove_dir_all(DATA);
        }
        Self {
            user_existed: run("getent", &["passwd"], &["raftfs"]).status.success(),
            running: Vec::new(),
            systemd: Path::new("/run/systemd/system").exists(),
        }
    }

    fn start_units(&mut self) {
        for unit in UNITS {
            if self.systemd {
                run_ok("systemctl", &["start"], &[unit]);
            } else {
                self.running.push((unit, exec_start(unit)));
            }
        }
    }

    /// Stops the units as systemd does (SIGTERM, the metaserver hands its leadership over
    /// first) and checks that each ended cleanly.
    fn stop_units(&mut self) {
        if self.systemd {
            run_ok("systemctl", &["stop"], &UNITS);
            return;
        }
        while let Some((unit, mut child)) = self.running.pop() {
            run_ok("kill", &["-TERM"], &[child.id().to_string()]);
            let status = child.wait().expect("wait");
            assert!(status.success(), "{unit} stopped with {status}");
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for (_, child) in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.systemd {
            let _ = run("systemctl", &["stop"], &UNITS);
        }
        let _ = run("dpkg", &["--purge"], &PACKAGES);
        if Path::new(MARKER).exists() {
            let _ = std::fs::remove_dir_all(DATA);
        }
        if !self.user_existed {
            let _ = run("deluser", &["--system"], &["raftfs"]);
            let _ = run("delgroup", &["--system"], &["raftfs"]);
        }
    }
}

/// What systemd would do with the unit, where it is not PID 1: its `ExecStart` as its
/// `User` and `Group`, with its `LimitNOFILE` and `UMask` (util-linux's prlimit and
/// setpriv). The process is the unit's main process itself (every step execs the next).
fn exec_start(unit: &str) -> Child {
    let service = Unit::read(&unit_path(unit));
    let user = service.get("User").expect("User");
    let group = service.get("Group").expect("Group");
    let nofile = open_files_limit(service.get("LimitNOFILE").expect("LimitNOFILE"));
    let nofile = nofile.as_str();
    let umask = service.get("UMask").expect("UMask");
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package-test");
    std::fs::create_dir_all(&logs).expect("log directory");
    let log = std::fs::File::create(logs.join(format!("{unit}.log"))).expect("log file");
    let child = Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .args([
            "--",
            "setpriv",
            "--reuid",
            user,
            "--regid",
            group,
            "--init-groups",
        ])
        .args([
            "--no-new-privs",
            "--",
            "sh",
            "-c",
            "umask \"$0\" && exec \"$@\"",
        ])
        .arg(umask)
        .args(service.exec_start())
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the unit's ExecStart");
    check_process(unit, child.id(), service.exec_start()[0], user, nofile);
    child
}

/// The unit's `LimitNOFILE` as this machine lets root set it: a container's root may lack
/// CAP_SYS_RESOURCE (this build machine's does) and cannot raise the hard limit above its
/// own, where systemd as PID 1 could; the test then applies its own hard limit and says so.
fn open_files_limit(unit: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    const CAP_SYS_RESOURCE: u32 = 24;
    if effective & (1 << CAP_SYS_RESOURCE) != 0 {
        return unit.to_string();
    }
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .expect("hard open files limit");
    let wanted: u64 = unit.parse().expect("LimitNOFILE is a number");
    if wanted <= hard {
        return unit.to_string();
    }
    eprintln!(
        "root here has no CAP_SYS_RESOURCE: LimitNOFILE={wanted} applied as this process's \
         hard limit, {hard}"
    );
    hard.to_string()
}

/// The unit's process, once it runs its binary: its user and its open-files limit.
fn check_process(unit: &str, pid: u32, binary: &str, user: &str, nofile: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe == Path::new(binary) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unit} runs {}, not {binary}",
            exe.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let uid = std::fs::metadata(format!("/proc/{pid}"))
        .expect("process")
        .uid();
    let passwd = run_ok("getent", &["passwd"], &[user]);
    let expected: u32 = passwd
        .split(':')
        .nth(2)
        .and_then(|u| u.parse().ok())
        .expect("uid");
    assert_eq!(uid, expected, "{unit} runs as {user}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files limit");
    assert!(
        open_files.split_whitespace().any(|w| w == nofile),
        "{unit}: {open_files}"
    );
}
