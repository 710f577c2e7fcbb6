//! The operator pages (issue 24) through real processes and a real browser: headless
//! Chromium (Debian's `chromium`, which `scripts/install-deps.sh` installs) loads every page
//! of a local cluster over the DevTools protocol, the DOM is checked for the members, the
//! active, the blockservers and their racks and the health summary; a blockserver is killed
//! and the pages show it dead and the degraded groups rise, then fall back to healthy once
//! reconstruction has run. Screenshots of each state are kept as test artifacts (in
//! `$RAFTFS_ARTIFACTS/ui-screenshots`, else the target directory's `tmp/ui-screenshots`).
//! The JSON of every page comes from the same handler and is checked against the HTML.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::LocalCluster;
use fantoccini::{Client as Browser, ClientBuilder};
use serde_json::Value;

const MIB: usize = 1 << 20;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's chromedriver on a port of its own, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn driver() -> Driver {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: scripts/install-deps.sh installs Debian's chromium and chromium-driver"
        );
    }
    let port = free_port();
    // Its own process group, so that the browsers it starts go with it.
    let child = Command::new(CHROMEDRIVER)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A headless Chromium session. As root in a container: no sandbox; and no background
/// traffic towards a closed network.
async fn browser(driver: &Driver) -> Browser {
    let options = serde_json::json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1100",
        ],
    });
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

fn artifacts() -> PathBuf {
    let base = std::env::var_os("RAFTFS_ARTIFACTS")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    let dir = base.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Loads `url`, waiting for the page's header (every page has one).
async fn load(b: &Browser, url: &str) {
    b.goto(url).await.expect("navigate");
    b.wait()
        .for_element(fantoccini::Locator::Css("#answered"))
        .await
        .expect("the page's header");
}

/// The value of a JavaScript expression on the page.
async fn eval(b: &Browser, expr: &str) -> Value {
    b.execute(&format!("return {expr};"), Vec::new())
        .await
        .expect("script")
}

async fn text(b: &Browser, selector: &str) -> String {
    let v = eval(
        b,
        &format!("(document.querySelector('{selector}') || {{}}).textContent || null"),
    )
    .await;
    v.as_str()
        .unwrap_or_else(|| panic!("no {selector} on the page"))
        .trim()
        .to_owned()
}

async fn number(b: &Browser, selector: &str) -> u64 {
    let t = text(b, selector).await;
    t.parse()
        .unwrap_or_else(|_| panic!("{selector} is not a number: {t:?}"))
}

async fn verdict(b: &Browser) -> Value {
    eval(b, "document.querySelector('#health-tiles').dataset.verdict").await
}

async fn screenshot(b: &Browser, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    let path = artifacts().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// A page's JSON, asked for with `?format=json`.
/// The rebuild reads per rack pair on the reconstruction page are what the blockservers'
/// own counters say (once their next heartbeats have carried them), and the page shows them.
async fn check_measured_reads(tab: &Browser, base: &str, addr: &str, cluster: &LocalCluster) {
    let racks = ["r1", "r2"];
    let scraped = || {
        let mut pairs = std::collections::BTreeMap::new();
        for from in racks {
            for to in racks {
                let bytes = common::crossing(cluster, from, to);
                if bytes > 0 {
                    pairs.insert((from.to_owned(), to.to_owned()), bytes);
                }
            }
        }
        pairs
    };
    let start = Instant::now();
    loop {
        let (want, got) = (scraped(), measured_totals(addr));
        if !want.is_empty() && want == got {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "reconstruction page {got:?}, blockservers' counters {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    load(tab, &format!("{base}/ui/reconstruction")).await;
    let rows = tab
        .find_all(fantoccini::Locator::Css("#measured tr.measured"))
        .await
        .expect("measured rows");
    assert_eq!(rows.len(), scraped().len(), "a row per rack pair");
    screenshot(tab, "12-reconstruction-measured").await;
}

/// The reconstruction page's rebuild reads: bytes by (from rack, to rack).
fn measured_totals(addr: &str) -> std::collections::BTreeMap<(String, String), u64> {
    let page = json(addr, "/ui/reconstruction");
    let pairs = page["measured"].as_array().cloned().unwrap_or_default();
    pairs
        .iter()
        .map(|p| {
            let name = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            let total = p["total_bytes"].as_u64().unwrap_or(0);
            ((name("from"), name("to")), total)
        })
        .collect()
}

/// A heartbeat whose rebuild reads name a rack longer than any allowed is refused with
/// INVALID_ARGUMENT before anything is kept: the page shows what it showed.
async fn bad_reads_are_refused(cluster: &LocalCluster, active: u64, metrics: &str) {
    use raftfs_proto as pb;
    let before = measured_totals(metrics);
    let channel = common::dial::channel(&cluster.addr_of(active), &common::dial::Dial::Plain);
    let server = cluster.file().block[1].id;
    let status = raftfs_proto::block_servers_client::BlockServersClient::new(channel)
        .heartbeat(pb::HeartbeatRequest {
            node_id: server,
            reconstruction_read: vec![pb::RackBytes {
                rack: "r".repeat(257),
                bytes: 1 << 40,
            }],
            ..Default::default()
        })
        .await
        .expect_err("a rack name of 257 bytes is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(measured_totals(metrics), before, "nothing kept");
}

fn json(addr: &str, page: &str) -> Value {
    let sep = if page.contains('?') { '&' } else { '?' };
    let body = common::http_get(addr, &format!("{page}{sep}format=json")).expect("GET");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{page}: {e}: {body}"))
}

/// Reloads `url` until `check` holds on it.
macro_rules! until {
    ($b:expr, $url:expr, $within:expr, $what:expr, |$t:ident| $check:expr) => {{
        let start = Instant::now();
        loop {
            load($b, &$url).await;
            let $t = $b;
            if $check {
                break;
            }
            assert!(
                start.elapsed() < $within,
                "{}: not seen within {:?} at {}",
                $what,
                $within,
                $url
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

fn metrics_addr_of(cluster: &LocalCluster, id: u64) -> String {
    cluster
        .file()
        .meta
        .iter()
        .find(|m| m.id == id)
        .and_then(|m| m.metrics_addr.clone())
        .expect("a metaserver's metrics address")
}

/// The active's id, as its own page says.
async fn active(cluster: &LocalCluster) -> u64 {
    let start = Instant::now();
    loop {
        for m in cluster.file().meta {
            let Some(addr) = m.metrics_addr else { continue };
            if let Ok(body) = common::http_get(&addr, "/ui?format=json")
                && let Ok(v) = serde_json::from_str::<Value>(&body)
                && v["answered"]["role"] == "active"
            {
                return m.id;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_cluster_a_lost_blockserver_and_its_rebuild() {
    let cluster = LocalCluster::up(
        3,
        &[
            "--observers",
            "1",
            "--blockservers",
            "6",
            "--racks",
            "2",
            "--dead-after-secs",
            "5",
        ],
    );
    let c = cluster.client();
    for dir in ["/rep", "/ec"] {
        c.mkdir(dir, true).await.expect("mkdir");
    }
    common::put_file(&c, "/rep/a", "REPLICATED-3", &common::content(3 * MIB, 1)).await;
    common::put_file(&c, "/ec/b", "RS-3-2-1024k", &common::content(4 * MIB, 2)).await;
    common::wait_healthy(&c, 6, Duration::from_secs(30)).await;
    // Slow rebuilds (1 MB/s a server): the degraded state lasts long enough to be seen. A
    // rack-pair budget, for the reconstruction page and the dashboard's budget query.
    let out = cluster.ctl(&[
        "reconstruction",
        "throttle",
        "--node",
        "1",
        "--rack-pair",
        "r1:r2=50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let id = active(&cluster).await;
    let addr = metrics_addr_of(&cluster, id);
    let base = format!("http://{addr}");
    let driver = driver();
    let browser = browser(&driver).await;
    let tab = &browser;

    // The overview: the members, which is active, the fleet and its health.
    until!(
        tab,
        format!("{base}/ui"),
        Duration::from_secs(20),
        "a healthy pass",
        |t| verdict(t).await == "healthy" && number(t, "#groups-healthy").await >= 2
    );
    assert_eq!(text(tab, "#answered-role").await, "active");
    assert_eq!(number(tab, "#answered-id").await, id);
    let members = eval(tab, "[...document.querySelectorAll('#members tr.member')].map(r => [Number(r.dataset.id), r.dataset.role, r.dataset.active === 'true'])").await;
    let members = members.as_array().expect("members").clone();
    assert_eq!(members.len(), 4, "{members:?}");
    assert_eq!(
        members.iter().filter(|m| m[1] == "observer").count(),
        1,
        "{members:?}"
    );
    let actives: Vec<&Value> = members.iter().filter(|m| m[2] == true).collect();
    assert_eq!(actives.len(), 1, "{members:?}");
    assert_eq!(actives[0][0], id);
    assert_eq!(number(tab, "#servers-live").await, 6);
    assert_eq!(number(tab, "#servers-dead").await, 0);
    let policies = eval(
        tab,
        "[...document.querySelectorAll('#census tr[data-policy]')].map(r => r.dataset.policy)",
    )
    .await;
    assert_eq!(
        policies,
        serde_json::json!(["REPLICATED-3", "RS-3-2-1024k"]),
        "the census by policy"
    );
    screenshot(tab, "1-overview").await;

    // The blockservers by rack.
    load(tab, &format!("{base}/ui/blockservers")).await;
    let racks = eval(
        tab,
        "[...document.querySelectorAll('h2.rack')].map(h => h.dataset.rack)",
    )
    .await;
    assert_eq!(racks, serde_json::json!(["r1", "r2"]));
    let servers = eval(tab, "[...document.querySelectorAll('tr.server')].map(r => [Number(r.dataset.id), r.dataset.rack, r.dataset.state])").await;
    let servers = servers.as_array().expect("servers").clone();
    assert_eq!(servers.len(), 6, "{servers:?}");
    for s in &servers {
        let bid = s[0].as_u64().expect("id");
        let rack = cluster
            .file()
            .block
            .iter()
            .find(|b| b.id == bid)
            .map(|b| b.rack.clone())
            .expect("in cluster.json");
        assert_eq!(s[1], rack.as_str(), "server {bid}'s rack");
        assert_eq!(s[2], "live");
    }
    screenshot(tab, "2-blockservers").await;

    // Health, reconstruction and the workers.
    load(tab, &format!("{base}/ui/health")).await;
    assert_eq!(number(tab, "#groups-degraded").await, 0);
    // The scan's census and fsck's walk count the same closed groups.
    let fsck_groups = eval(
        tab,
        "document.querySelector('#fsck-summary').dataset.groups",
    )
    .await;
    assert_eq!(
        fsck_groups.as_str().and_then(|g| g.parse::<u64>().ok()),
        Some(number(tab, "#groups-healthy").await),
        "census and fsck"
    );
    assert_eq!(
        eval(
            tab,
            "document.querySelector('#fsck-summary').dataset.degraded"
        )
        .await,
        "0"
    );
    screenshot(tab, "3-health").await;
    load(tab, &format!("{base}/ui/health?path=/ec")).await;
    assert_eq!(
        eval(
            tab,
            "document.querySelector('#json-link').getAttribute('href')"
        )
        .await,
        "?path=/ec&format=json",
        "the JSON link keeps the page's query"
    );
    load(tab, &format!("{base}/ui/reconstruction")).await;
    assert_eq!(number(tab, "#in-flight").await, 0);
    let budgets = eval(
        tab,
        "[...document.querySelectorAll('#budgets tr.budget')].map(r => [...r.cells].map(c => c.textContent))",
    )
    .await;
    assert_eq!(
        budgets,
        serde_json::json!([["rack", "r1", "r2", "47.7 MiB/s"]])
    );
    screenshot(tab, "4-reconstruction").await;
    load(tab, &format!("{base}/ui/workers")).await;
    let workers = eval(
        tab,
        "[...document.querySelectorAll('tr.worker')].map(r => r.dataset.name)",
    )
    .await;
    assert!(
        workers
            .as_array()
            .is_some_and(|w| w.iter().any(|n| n == "redundancy-scan")),
        "{workers}"
    );
    screenshot(tab, "5-workers").await;

    // A standby's page says what it is, and at which state.
    let standby = cluster
        .file()
        .meta
        .iter()
        .find(|m| m.id != id && m.role == "voter")
        .map(|m| m.id)
        .expect("a standby");
    load(
        tab,
        &format!("http://{}/ui", metrics_addr_of(&cluster, standby)),
    )
    .await;
    assert_eq!(text(tab, "#answered-role").await, "standby");
    assert!(number(tab, "#answered-state-id").await > 0);
    screenshot(tab, "6-standby").await;

    // A blockserver's own page: its rack, its blocks.
    let victim = cluster
        .file()
        .block
        .into_iter()
        .find(|b| {
            common::block_metrics_addr(&cluster, b.id)
                .is_some_and(|a| json(&a, "/ui")["blocks"].as_u64().is_some_and(|n| n > 0))
        })
        .expect("a blockserver holding blocks");
    let victim_addr = common::block_metrics_addr(&cluster, victim.id).expect("metrics address");
    load(tab, &format!("http://{victim_addr}/ui")).await;
    assert_eq!(text(tab, "#rack").await, victim.rack);
    let held = number(tab, "#blocks").await;
    assert!(held > 0, "the victim holds blocks");
    screenshot(tab, "7-blockserver").await;

    // The victim dies: the pages show it dead and groups degraded...
    cluster.kill_block(victim.id);
    let dead_row = format!(
        "document.querySelector('tr.server[data-id=\"{}\"]').dataset.state",
        victim.id
    );
    until!(
        tab,
        format!("{base}/ui/blockservers"),
        Duration::from_secs(30),
        "the victim dead",
        |t| eval(t, &dead_row).await == "dead"
    );
    assert_eq!(number(tab, "#servers-dead").await, 1);
    screenshot(tab, "8-blockservers-dead").await;
    until!(
        tab,
        format!("{base}/ui"),
        Duration::from_secs(30),
        "degraded groups",
        |t| number(t, "#groups-degraded").await > 0
    );
    assert_eq!(verdict(tab).await, "degraded");
    screenshot(tab, "9-overview-degraded").await;

    // ...then healthy again once its blocks are rebuilt elsewhere.
    until!(
        tab,
        format!("{base}/ui"),
        Duration::from_secs(120),
        "healthy after reconstruction",
        |t| verdict(t).await == "healthy" && number(t, "#groups-degraded").await == 0
    );
    assert_eq!(number(tab, "#servers-dead").await, 1);
    screenshot(tab, "10-overview-healed").await;
    load(tab, &format!("{base}/ui/reconstruction")).await;
    screenshot(tab, "11-reconstruction-after").await;

    // Every page's JSON comes from the same handler: it says the same.
    let overview = json(&addr, "/ui");
    assert_eq!(overview["answered"]["id"], id);
    assert_eq!(overview["fleet"]["dead"], 1);
    assert_eq!(overview["health"]["total"]["degraded"], 0);
    let started = json(&addr, "/ui/reconstruction")["started"]
        .as_u64()
        .expect("tasks started");
    assert!(started > 0, "the rebuild ran through tasks");
    check_measured_reads(tab, &base, &addr, &cluster).await;
    bad_reads_are_refused(&cluster, id, &addr).await;
    for page in ["/ui/blockservers", "/ui/health", "/ui/workers"] {
        let v = json(&addr, page);
        assert!(v["answered"]["state_id"].as_u64().is_some(), "{page}: {v}");
    }
    check_dashboard(&cluster);
    browser.close().await.expect("close the browser");

    // JSON by `Accept`, and a format nobody knows refused.
    let accept = http_get_with(&addr, "/ui/workers", "Accept: application/json");
    assert!(
        accept.starts_with("HTTP/1.0 200") || accept.starts_with("HTTP/1.1 200"),
        "{accept}"
    );
    assert!(accept.contains("\"workers\":["), "{accept}");
    let refused = http_get_with(&addr, "/ui?format=xml", "Accept: text/html");
    assert!(
        refused.starts_with("HTTP/1.1 400") || refused.starts_with("HTTP/1.0 400"),
        "{refused}"
    );
}

/// The sample names a scrape's text exports: a counter's `_total`, a histogram's `_bucket`,
/// `_sum` and `_count`, a gauge's own name, from every family's `# TYPE` line (a family with
/// no label set yet has none: the test makes every family the dashboard uses appear).
fn exported(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if (words.next(), words.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every query of the Grafana dashboard (etc/grafana/raftfs.json) names only metrics that
/// this running cluster exports, scraped from the targets `local scrape-targets` lists.
fn check_dashboard(cluster: &LocalCluster) {
    let out = cluster.ctl(&["local", "scrape-targets", "--dir", &cluster.dir_arg()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let targets: Value = serde_json::from_slice(&out.stdout).expect("targets json");
    let groups = targets.as_array().expect("target groups");
    // 4 metaservers and 6 blockservers (one of them dead, still listed).
    assert_eq!(groups.len(), 10, "{targets}");
    let mut names = std::collections::BTreeSet::new();
    let mut scraped = 0;
    for g in groups {
        let addr = g["targets"][0].as_str().expect("a target");
        assert!(g["labels"]["role"].is_string(), "{g}");
        if let Ok(text) = common::http_get(addr, "/metrics") {
            names.extend(exported(&text));
            scraped += 1;
        }
    }
    assert_eq!(scraped, 9, "every live server scraped");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/grafana/raftfs.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}: no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            // Grafana's interval variable stands for a range; the rest is PromQL as is.
            let promql = expr.replace("$__rate_interval", "1m");
            if let Err(e) = promql_parser::parser::parse(&promql) {
                panic!("{}: {expr} does not parse: {e}", panel["title"]);
            }
            let metrics: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("raftfs_"))
                .collect();
            assert!(
                !metrics.is_empty(),
                "{}: {expr} names no metric",
                panel["title"]
            );
            for m in metrics {
                assert!(
                    names.contains(m),
                    "{}: {m} is not exported by the cluster",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "{checked} metric names checked");
}

/// A GET with one extra header; the whole response (status line, headers, body).
fn http_get_with(addr: &str, path: &str, header: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{header}\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}
