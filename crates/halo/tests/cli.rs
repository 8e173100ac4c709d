//! The `halo` binary as a user runs it: real processes, real sockets, real
//! signals. Waits are on output lines with deadlines, never on sleeps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

fn halo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_halo"))
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_config(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("halo-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// A token file only its owner can read (halo refuses others).
fn token_file(name: &str, token: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = temp_config(name, &format!("{token}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn check_passes_on_every_example() {
    let files = examples();
    for name in [
        "gslb-failover.toml",
        "two-datacenters.toml",
        "virtual-hosts.toml",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "examples/{name} is missing"
        );
    }
    for file in files {
        let out = halo().arg("check").arg("-c").arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{}:\n{}",
            file.display(),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(": OK: node "),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn check_reports_every_error_with_positions_and_exits_1() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../halo-config/tests/data/four-errors.toml");
    let out: Output = halo().arg("check").arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let p = path.display();
    for want in [
        format!("{p}:4:16: no pool named \"routr80\""),
        format!("{p}:9:14: `interval`: bad duration \"2 sekunden\""),
        format!("{p}:13:3: unknown key `wieght` in [[pool.server]]; did you mean `weight`?"),
        format!("{p}:18:8: `vrid` = 300 is out of range"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(stderr.contains("4 problems found"), "{stderr}");
}

#[test]
fn check_on_a_missing_file_says_so() {
    let out = halo()
        .args(["check", "-c", "/nonexistent/halo.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/halo.toml: cannot read"));
}

#[test]
fn run_refuses_a_file_with_nothing_to_run() {
    let path = temp_config("empty.toml", "[node]\nname = \"idle\"\n");
    let out = halo().arg("check").arg("-c").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = halo().arg("run").arg("-c").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("nothing to run"), "{stderr}");
}

#[test]
fn version_and_help() {
    let out = halo().arg("--version").output().unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        format!("halo {}", env!("CARGO_PKG_VERSION"))
    );
    let out = halo().arg("--help").output().unwrap();
    let help = text(&out.stdout);
    assert!(
        help.contains("halo check -c") && help.contains("SIGHUP"),
        "{help}"
    );
}

/// Lines of a child's stderr, delivered through a channel so a test can wait
/// for one with a deadline.
struct Logs(mpsc::Receiver<String>);

impl Logs {
    fn of(child: &mut Child) -> Self {
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self(rx)
    }

    // A real child process runs on real time: a wall-clock deadline is right here.
    #[allow(clippy::disallowed_methods)]
    fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within 20s"),
            }
        }
    }
}

/// `halo run -c path` with its log lines captured.
fn run_halo(path: &Path) -> (Child, Logs) {
    let mut child = halo()
        .arg("run")
        .arg("-c")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Logs::of(&mut child);
    (child, logs)
}

/// The `addr=` field of a log line.
fn addr_in(line: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"))
        .to_owned()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn run_checks_pools_reloads_on_sighup_and_stops_on_sigterm() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = |extra: &str| {
        format!(
            "[node]\nname = \"test-node\"\n[[pool]]\nname = \"p\"\n[pool.check]\ninterval = \"100ms\"\nfall = 1\n\
             [[pool.server]]\nname = \"s1\"\naddress = \"{addr}\"\n{extra}"
        )
    };
    let path = temp_config("run.toml", &config(""));
    let mut child = halo()
        .arg("run")
        .arg("-c")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Logs::of(&mut child);
    logs.wait_for("running: node test-node");

    // The server goes away: the health engine notices and logs it.
    drop(listener);
    let line = logs.wait_for("server is DOWN");
    assert!(line.contains("p/s1") && line.contains("L4CON"), "{line}");

    // A good reload adds a server; a bad one is rejected and changes nothing.
    std::fs::write(
        &path,
        config("[[pool.server]]\nname = \"s2\"\naddress = \"127.0.0.1:1\"\n"),
    )
    .unwrap();
    signal(&child, "-HUP");
    logs.wait_for("reloaded: node test-node (site default); 0 listeners, 1 pool (2 servers)");
    std::fs::write(&path, config("wieght = 1\n")).unwrap();
    signal(&child, "-HUP");
    logs.wait_for("reload rejected, the running config stays");
    logs.wait_for("unknown key `wieght`");

    signal(&child, "-TERM");
    logs.wait_for("stopping");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn run_serves_a_tcp_listener_and_logs_its_address() {
    // A backend that greets every connection.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in backend.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = std::io::Write::write_all(&mut conn, b"hello from backend\n");
        }
    });
    let path = temp_config(
        "tcp.toml",
        &format!(
            "[[listener]]\nname = \"front\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"p\"\n\
             [[pool]]\nname = \"p\"\n[[pool.server]]\nname = \"b\"\naddress = \"{backend_addr}\"\n"
        ),
    );
    let (mut child, logs) = run_halo(&path);
    let addr: std::net::SocketAddr = addr_in(&logs.wait_for("listening")).parse().unwrap();
    let conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut greeting = String::new();
    BufReader::new(conn).read_line(&mut greeting).unwrap();
    assert_eq!(greeting, "hello from backend\n");
    logs.wait_for("halo::access");

    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// The admin API through `halo status` and `halo ctl`, as an operator uses
/// them: status and metrics agree, a drain needs the token (401 without it,
/// nothing changes), a reload through the API is validated like SIGHUP.
#[test]
fn admin_api_status_ctl_metrics_and_reload() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = backend.local_addr().unwrap();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let token = token_file("admin.token", "correct-horse-battery");
    let wrong = token_file("wrong.token", "not-the-token");
    let config = |extra: &str| {
        format!(
            "[node]\nname = \"adm\"\nsite = \"east\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n\
             [[pool]]\nname = \"app\"\n[pool.check]\ninterval = \"100ms\"\nfall = 1\n\
             [[pool.server]]\nname = \"s1\"\naddress = \"{up}\"\n[[pool.server]]\nname = \"s2\"\naddress = \"{down}\"\n{extra}",
            token.display()
        )
    };
    let path = temp_config("admin.toml", &config(""));
    let (mut child, logs) = run_halo(&path);
    let addr = addr_in(&logs.wait_for("admin API listening"));
    let url = format!("http://{addr}");
    let run = |args: &[&str], token: &Path| {
        halo()
            .args(args)
            .args(["--admin", &url, "--token-file"])
            .arg(token)
            .output()
            .unwrap()
    };
    let status = || -> serde_json::Value {
        let out = run(&["status", "--json"], &token);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let server = |st: &serde_json::Value, name: &str, key: &str| {
        st["pools"][0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()[key]
            .as_str()
            .unwrap()
            .to_owned()
    };
    logs.wait_for("server is DOWN");
    let st = status();
    assert_eq!(
        (st["node"].as_str(), st["site"].as_str()),
        (Some("adm"), Some("east"))
    );
    assert_eq!(server(&st, "s1", "health"), "up");
    assert_eq!(server(&st, "s2", "health"), "down");

    // The table a human reads.
    let out = run(&["status"], &token);
    let table = text(&out.stdout);
    assert!(table.contains("POOL app (round-robin)"), "{table}");
    assert!(table.contains("s2               down    ready"), "{table}");

    // Without the right token: 401, nothing changes.
    let out = run(&["ctl", "drain", "app/s1"], &wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    assert_eq!(server(&status(), "s1", "admin"), "ready");
    let refused = logs.wait_for("admin change refused");
    assert!(refused.contains(" what=app/s1 "), "{refused}");

    let out = run(&["ctl", "drain", "app/s1"], &token);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "app/s1 is now drain\n");
    logs.wait_for("admin change: app/s1 is now drain");
    assert_eq!(server(&status(), "s1", "admin"), "drain");
    // A weight at run time (HAProxy's `set weight`), range-checked.
    let out = run(&["ctl", "weight", "app/s1", "7"], &token);
    assert_eq!(
        text(&out.stdout),
        "app/s1 is weight 7\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(status()["pools"][0]["servers"][0]["weight"], 7);
    let out = run(&["ctl", "weight", "app/s1", "300"], &token);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("weight: 0 to 256"));
    let out = run(&["ctl", "maint", "app/nope"], &token);
    assert!(text(&out.stderr).contains("pool \"app\" has no server named \"nope\""));

    // Metrics say the same, in Prometheus text.
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("{url}{path}")])
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let metrics = curl("/metrics");
    for want in [
        "halo_server_admin_state{pool=\"app\",server=\"s1\",state=\"drain\"} 1",
        "halo_server_up{pool=\"app\",server=\"s2\"} 0",
        "halo_info{node=\"adm\",site=\"east\",version=",
    ] {
        assert!(metrics.contains(want), "{want} not in:\n{metrics}");
    }
    assert!(curl("/healthz").ends_with("\n200"));
    assert!(curl("/readyz").ends_with("\n200"));

    // Reload through the API: a bad file is rejected and reported.
    std::fs::write(&path, config("wieght = 1\n")).unwrap();
    let out = run(&["ctl", "reload"], &token);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("reload rejected") && err.contains("unknown key `wieght`"),
        "{err}"
    );
    std::fs::write(
        &path,
        config("[[pool.server]]\nname = \"s3\"\naddress = \"127.0.0.1:1\"\n"),
    )
    .unwrap();
    let out = run(&["ctl", "reload"], &token);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 pool (3 servers)"));
    // s1 kept its monitor across the reload, and with it its admin state.
    assert_eq!(server(&status(), "s1", "admin"), "drain");

    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    drop(backend);
}

/// `[admin] state_file`: a server put in maintenance and a weight set at run
/// time survive a restart (written after each change, applied before any
/// traffic at start); a malformed file is logged and ignored.
#[test]
fn run_time_server_state_survives_a_restart() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = backend.local_addr().unwrap();
    let token = token_file("state.token", "state-token-of-the-test");
    let state = temp_config("servers.state.json", "");
    std::fs::remove_file(&state).unwrap();
    let path = temp_config(
        "state.toml",
        &format!(
            "[node]\nname = \"st\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\nstate_file = \"{}\"\n\
             [[pool]]\nname = \"app\"\n[[pool.server]]\nname = \"s1\"\naddress = \"{up}\"\n\
             [[pool.server]]\nname = \"s2\"\naddress = \"{up}\"\n",
            token.display(),
            state.display()
        ),
    );
    let ctl = |url: &str, args: &[&str]| {
        let out = halo()
            .args(args)
            .args(["--admin", url, "--token-file"])
            .arg(&token)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        out
    };
    // Each server's (admin, weight) as `halo status --json` shows them.
    let servers = |url: &str| -> Vec<(String, u64)> {
        let st: serde_json::Value =
            serde_json::from_slice(&ctl(url, &["status", "--json"]).stdout).unwrap();
        st["pools"][0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["admin"].as_str().unwrap().to_owned(),
                    s["weight"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // Starts halo; `first` is a log line expected before the admin API's.
    let start = |first: Option<&str>| {
        let (child, logs) = run_halo(&path);
        if let Some(line) = first {
            logs.wait_for(line);
        }
        let url = format!("http://{}", addr_in(&logs.wait_for("admin API listening")));
        (child, logs, url)
    };

    let (mut child, logs, url) = start(None);
    assert_eq!(
        servers(&url),
        [("ready".to_owned(), 1), ("ready".to_owned(), 1)]
    );
    ctl(&url, &["ctl", "maint", "app/s1"]);
    ctl(&url, &["ctl", "weight", "app/s2", "9"]);
    logs.wait_for("admin change: app/s2 is weight 9");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        saved,
        serde_json::json!({"servers": [
            {"pool": "app", "server": "s1", "admin": "maint"},
            {"pool": "app", "server": "s2", "weight": 9}
        ]})
    );
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    drop(logs);

    // Started again: both come back as they were left.
    let (mut child, logs, url) = start(Some("server state restored from the state file"));
    assert_eq!(
        servers(&url),
        [("maint".to_owned(), 1), ("ready".to_owned(), 9)]
    );
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    drop(logs);

    // A file that is not JSON does not stop halo: logged, servers ready.
    std::fs::write(&state, "not json").unwrap();
    let (mut child, _logs, url) = start(Some("state file is not valid JSON"));
    assert_eq!(
        servers(&url),
        [("ready".to_owned(), 1), ("ready".to_owned(), 1)]
    );
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    drop(backend);
}

/// Polls `f` until it holds, or panics naming `what`. (A real process runs
/// on real time: a wall-clock deadline; the pause is a poll interval.)
#[allow(clippy::disallowed_methods)]
fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `halo demo` as the README tells a newcomer to run it: it prints where
/// everything is, the proxy alternates the two sites, the DNS answers east;
/// `fail east` on its stdin moves both to west, `heal east` brings east back.
#[test]
fn demo_fails_a_site_over_and_back() {
    if !common::have("/usr/bin/dig", "bind9-dnsutils") {
        return;
    }
    let mut child = halo()
        .args([
            "demo",
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
            "--admin-port",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Logs::of(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut proxy, mut dns) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo ended early"
        );
        let field = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        };
        if let Some(p) = field("proxy   ") {
            proxy = p;
        }
        if let Some(d) = field("DNS     ") {
            dns = d;
        }
        if line.contains("fail east | heal east") {
            break;
        }
    }
    let curl = || {
        let out = Command::new("curl")
            .args(["-s", "-m", "2", &proxy])
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let (ip, port) = dns.rsplit_once(':').unwrap();
    let dig = || {
        let out = Command::new("dig")
            .args([
                &format!("@{ip}"),
                "-p",
                port,
                "hello.demo.",
                "+short",
                "+time=1",
                "+tries=1",
            ])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_owned()
    };
    let sites = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let body = curl();
                body.split("(site ")
                    .nth(1)
                    .unwrap_or("")
                    .trim_end_matches(")\n")
                    .to_owned()
            })
            .collect()
    };
    poll("the proxy to alternate the sites", || {
        sites(2).contains(&"east".to_owned()) && sites(2).contains(&"west".to_owned())
    });
    poll("the DNS to answer east", || dig() == "127.0.0.2");

    std::io::Write::write_all(&mut stdin, b"fail east\n").unwrap();
    logs.wait_for("demo: site east failed");
    poll("only west through the proxy", || {
        sites(4).iter().all(|s| s == "west")
    });
    poll("the DNS to answer west", || dig() == "127.0.0.3");

    std::io::Write::write_all(&mut stdin, b"heal east\n").unwrap();
    poll("east back in the DNS answer", || dig() == "127.0.0.2");
    poll("east back through the proxy", || {
        sites(4).contains(&"east".to_owned())
    });

    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// SIGTERM with a request in flight: the listener stops accepting at once,
/// the request still gets its answer (within `stop_grace`), then halo exits 0.
#[test]
fn sigterm_drains_a_request_in_flight() {
    // A backend that answers only when the test says so.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let (arrived, got_request) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut conn, _) = backend.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        arrived.send(()).unwrap();
        released.recv().unwrap();
        let _ = std::io::Write::write_all(
            &mut conn,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlate\n",
        );
    });
    let path = temp_config(
        "drain.toml",
        &format!(
            "[node]\nstop_grace = \"30s\"\n[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"http\"\n\
             default_pool = \"p\"\n[[pool]]\nname = \"p\"\n[[pool.server]]\nname = \"slow\"\naddress = \"{backend_addr}\"\n"
        ),
    );
    let (mut child, logs) = run_halo(&path);
    let addr: std::net::SocketAddr = addr_in(&logs.wait_for("listening")).parse().unwrap();
    let curl = std::thread::spawn(move || {
        let out = Command::new("curl")
            .args([
                "-s",
                "-m",
                "20",
                "-w",
                " %{http_code}",
                &format!("http://{addr}/"),
            ])
            .output()
            .unwrap();
        text(&out.stdout)
    });
    got_request.recv_timeout(Duration::from_secs(20)).unwrap();
    signal(&child, "-TERM");
    logs.wait_for("stopping");
    poll("the listener to stop accepting", || {
        std::net::TcpStream::connect(addr).is_err()
    });
    release.send(()).unwrap();
    assert_eq!(curl.join().unwrap(), "late\n 200");
    logs.wait_for("drained: nothing in flight");
    assert!(child.wait().unwrap().success());
}

/// A reload may change where a listener sends traffic (its default pool,
/// routes), add a listener (bound before anything else changes: a port in
/// use refuses the reload) and remove one, without a restart.
#[test]
fn reload_moves_adds_and_removes_listeners() {
    let greeter = |word: &'static [u8]| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let _ = std::io::Write::write_all(&mut conn, word);
            }
        });
        addr
    };
    let (a, b) = (greeter(b"from a\n"), greeter(b"from b\n"));
    let config = |pool: &str, extra: &str| {
        format!(
            "[[listener]]\nname = \"front\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"{pool}\"\n\
             [[pool]]\nname = \"pa\"\n[[pool.server]]\nname = \"a\"\naddress = \"{a}\"\n\
             [[pool]]\nname = \"pb\"\n[[pool.server]]\nname = \"b\"\naddress = \"{b}\"\n{extra}"
        )
    };
    let path = temp_config("moves.toml", &config("pa", ""));
    let (mut child, logs) = run_halo(&path);
    let addr: std::net::SocketAddr = addr_in(&logs.wait_for("listening")).parse().unwrap();
    let greeting_at = |at: std::net::SocketAddr| {
        let conn = std::net::TcpStream::connect(at).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).unwrap();
        line
    };
    let greeting = || greeting_at(addr);
    assert_eq!(greeting(), "from a\n");
    std::fs::write(&path, config("pb", "")).unwrap();
    signal(&child, "-HUP");
    logs.wait_for("reloaded:");
    assert_eq!(greeting(), "from b\n");
    std::fs::write(
        &path,
        config(
            "pb",
            "[[listener]]\nname = \"second\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"pa\"\n",
        ),
    )
    .unwrap();
    signal(&child, "-HUP");
    let second: std::net::SocketAddr = addr_in(&logs.wait_for("listener=second")).parse().unwrap();
    logs.wait_for("reloaded:");
    assert_eq!(greeting_at(second), "from a\n");
    assert_eq!(greeting_at(addr), "from b\n");
    // A third listener on a port held elsewhere: the reload is refused
    // and both listeners go on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let with_second = |first: &str| {
        config(
            "pb",
            &format!(
                "[[listener]]\nname = \"second\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"pa\"\n{first}"
            ),
        )
    };
    std::fs::write(
        &path,
        with_second(&format!(
            "[[listener]]\nname = \"third\"\nbind = [\"{}\"]\nprotocol = \"tcp\"\ndefault_pool = \"pa\"\n",
            taken.local_addr().unwrap()
        )),
    )
    .unwrap();
    signal(&child, "-HUP");
    logs.wait_for("reload rejected");
    assert_eq!(greeting_at(second), "from a\n", "the running config stays");
    assert_eq!(greeting_at(addr), "from b\n");
    // Without "front": its port closes, "second" goes on.
    let only_second = with_second("").replace(
        "[[listener]]\nname = \"front\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"pb\"\n",
        "",
    );
    assert!(!only_second.contains("front"), "{only_second}");
    std::fs::write(&path, only_second).unwrap();
    signal(&child, "-HUP");
    logs.wait_for("reloaded:");
    poll("the removed listener to close", || {
        std::net::TcpStream::connect(addr).is_err()
    });
    assert_eq!(greeting_at(second), "from a\n");
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// A reload moves the admin API (the new address serves, the old one is
/// closed), adds `[gslb]` (the DNS tier starts and answers), then removes it.
#[test]
fn reload_moves_the_admin_api_and_starts_and_stops_the_dns_tier() {
    let config = |admin: &str, gslb: bool| {
        let mut c = format!(
            "[node]\nname = \"mv\"\nsite = \"east\"\n[admin]\nlisten = \"{admin}\"\n\
             [[pool]]\nname = \"app\"\n[[pool.server]]\nname = \"s1\"\naddress = \"127.0.0.1:9\"\n"
        );
        if gslb {
            c += "[gslb]\nzone = \"global.test\"\nlisten = [\"127.0.0.1:0\"]\nnameservers = [\"ns.global.test\"]\n\
                  [[gslb.service]]\nname = \"app\"\n[[gslb.service.endpoint]]\naddress = \"192.0.2.9\"\n";
        }
        c
    };
    let path = temp_config("move-admin.toml", &config("127.0.0.1:0", false));
    let (mut child, logs) = run_halo(&path);
    let old: std::net::SocketAddr = addr_in(&logs.wait_for("admin API listening"))
        .parse()
        .unwrap();
    let status = |at: std::net::SocketAddr| {
        halo()
            .args(["status", "--json", "--admin", &format!("http://{at}")])
            .output()
            .unwrap()
    };
    assert!(status(old).status.success());

    std::fs::write(&path, config("127.0.0.2:0", true)).unwrap();
    signal(&child, "-HUP");
    let dns: std::net::SocketAddr = addr_in(&logs.wait_for("DNS listening")).parse().unwrap();
    let new: std::net::SocketAddr = addr_in(&logs.wait_for("admin API listening"))
        .parse()
        .unwrap();
    logs.wait_for("reloaded:");
    assert_eq!(new.ip().to_string(), "127.0.0.2");
    let out = status(new);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["gslb"]["zone"], "global.test");
    poll("the old admin address to close", || {
        std::net::TcpStream::connect(old).is_err()
    });
    // A query for app.global.test A, by hand: the answer carries 192.0.2.9.
    let ask = || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["app", "global", "test"] {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        sock.send_to(&q, dns).unwrap();
        let mut buf = [0u8; 512];
        sock.recv(&mut buf).map(|n| buf[..n].to_vec())
    };
    let reply = ask().expect("the DNS tier answers");
    assert!(reply.windows(4).any(|w| w == [192, 0, 2, 9]), "{reply:?}");

    // Without [gslb]: the DNS tier stops.
    std::fs::write(&path, config("127.0.0.2:0", false)).unwrap();
    signal(&child, "-HUP");
    logs.wait_for("the DNS tier stops");
    logs.wait_for("reloaded:");
    assert!(ask().is_err(), "the DNS tier still answers");
    assert!(status(new).status.success());
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// `halo check` reads every certificate an https listener names: a missing
/// file, a key that belongs to another certificate and a file that is not
/// PEM are each reported at the `cert =` line, and `halo run` refuses them.
#[test]
fn check_and_run_report_bad_certificates_at_their_line() {
    if !common::have("/usr/bin/openssl", "openssl") {
        return;
    }
    let dir = temp_config("certs-marker", "")
        .parent()
        .unwrap()
        .join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["one", "two"] {
        common::self_signed(&dir, name, &[&format!("{name}.example.test")]);
    }
    std::fs::write(dir.join("garbage.pem"), "not a certificate\n").unwrap();
    let config = |certs: &[(&str, &str)]| {
        let mut c = String::from(
            "[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"https\"\ndefault_pool = \"p\"\n",
        );
        for (cert, key) in certs {
            c += &format!(
                "[[listener.certificate]]\ncert = \"certs/{cert}\"\nkey = \"certs/{key}\"\n"
            );
        }
        c + "[[pool]]\nname = \"p\"\n[[pool.server]]\nname = \"s\"\naddress = \"127.0.0.1:9\"\n"
    };
    let good = temp_config("tls-good.toml", &config(&[("one.pem", "one.key")]));
    let out = halo().arg("check").arg("-c").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let bad = temp_config(
        "tls-bad.toml",
        &config(&[
            ("one.pem", "one.key"),
            ("missing.pem", "one.key"),
            ("one.pem", "two.key"),
            ("garbage.pem", "one.key"),
        ]),
    );
    let out = halo().arg("check").arg("-c").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let file = bad.display().to_string();
    // Lines 10, 13 and 16 hold the bad `cert =` keys; column 8 is the value.
    for (line, what) in [
        (10, "cannot read certificate file"),
        (13, "do not make a usable pair"),
        (16, "no certificate in it"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{file}:{line}:8: ")) && l.contains(what)),
            "line {line} ({what}) not reported:\n{err}"
        );
    }
    assert!(err.contains("3 problems found"), "{err}");
    let out = halo().arg("run").arg("-c").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("do not make a usable pair"),
        "{}",
        text(&out.stderr)
    );
}
