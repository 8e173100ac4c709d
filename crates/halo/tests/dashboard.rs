//! The dashboard in a real browser: headless Chromium driven by selenium
//! (`tests/dashboard/drive.py`) loads `/`, sees what each site's GSLB node
//! answers (this node, site east, and a second halo as its peer, site
//! west), sees a server go red when its backend stops, types the token,
//! clicks "drain" and sees the state change.
//!
//! Needs Debian's chromium and chromium-driver and Python's selenium
//! (scripts/test installs them). Outside CI a missing one skips the test and
//! says so; in CI it fails. `HALO_SCREENSHOT=path` keeps the screenshot.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

#[test]
fn dashboard_shows_a_server_go_red_and_drains_one() {
    if !common::have("/usr/bin/chromium", "chromium")
        || !common::have("/usr/bin/chromedriver", "chromium-driver")
    {
        return;
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    if !selenium {
        assert!(
            std::env::var_os("CI").is_none(),
            "python's selenium is missing in CI: scripts/test installs it"
        );
        #[allow(clippy::print_stderr, reason = "a skipped test says so")]
        {
            eprintln!("SKIPPED: python3 -m pip install selenium (CI has it)");
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("halo-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = |folder: &str| {
        // A python server per backend: killing it is a real failure. It
        // binds port 0 and says which port it got.
        let root = dir.join(folder);
        std::fs::create_dir_all(&root).unwrap();
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut said = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut said)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port: u16 = said
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("python's http.server said {said:?}"));
        (std::net::SocketAddr::from(([127, 0, 0, 1], port)), child)
    };
    // The peer: another halo for site west, whose GSLB node publishes
    // 192.0.2.20 and knows no peer (so it answers only that).
    let peer_path = dir.join("west.toml");
    std::fs::write(
        &peer_path,
        "[node]\nname = \"west-1\"\nsite = \"west\"\n[gslb]\nzone = \"global.test\"\nlisten = [\"127.0.0.1:0\"]\n\
         nameservers = [\"ns.global.test\"]\n[[gslb.service]]\nname = \"app\"\nstrategy = \"round-robin\"\n\
         [[gslb.service.endpoint]]\naddress = \"192.0.2.20\"\nhealth = \"always\"\n",
    )
    .unwrap();
    let mut peer = Command::new(env!("CARGO_BIN_EXE_halo"))
        .arg("run")
        .arg("-c")
        .arg(&peer_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let peer_lines = common::lines_of(peer.stderr.take().unwrap());
    let peer_dns = loop {
        let line = peer_lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the west halo did not start its DNS");
        if line.contains("DNS listening") {
            break line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .unwrap()
                .to_owned();
        }
    };
    let (a1, mut s1) = server("s1");
    let (a2, mut s2) = server("s2");
    let token = "dashboard-test-token";
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    std::fs::set_permissions(
        dir.join("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let path = dir.join("halo.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"dash\"\nsite = \"east\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n\
             [[pool]]\nname = \"app\"\n[pool.check]\ninterval = \"200ms\"\nrise = 1\nfall = 1\ninitial = \"down\"\n\
             [[pool.server]]\nname = \"s1\"\naddress = \"{a1}\"\n[[pool.server]]\nname = \"s2\"\naddress = \"{a2}\"\n\
             [gslb]\nzone = \"global.test\"\nlisten = [\"127.0.0.1:0\"]\nnameservers = [\"ns.global.test\"]\npeers = [\"{peer_dns}\"]\n\
             [[gslb.service]]\nname = \"app\"\nstrategy = \"round-robin\"\n\
             [[gslb.service.endpoint]]\naddress = \"192.0.2.10\"\nhealth = {{ pool = \"app\" }}\n"
        ),
    )
    .unwrap();
    let mut halo = Command::new(env!("CARGO_BIN_EXE_halo"))
        .arg("run")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(halo.stderr.take().unwrap());
    let mut admin = String::new();
    let mut line = String::new();
    while admin.is_empty() {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "halo ended early");
        if line.contains("admin API listening") {
            admin = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .unwrap()
                .to_owned();
        }
    }
    // The rest of the log, after the admin address (BufReader may hold some).
    let lines = common::lines_of(log);

    let shot =
        std::env::var_os("HALO_SCREENSHOT").map_or_else(|| dir.join("dashboard.png"), Into::into);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/drive.py");
    let mut driver = Command::new("python3")
        .arg(&script)
        .arg(format!("http://{admin}/"))
        .arg(token)
        .arg(&shot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(driver.stdout.take().unwrap());
    let mut word = String::new();
    said.read_line(&mut word).unwrap();
    assert_eq!(word.trim(), "READY", "the browser never saw s1 up");
    // s1's backend dies; the browser must see it go red.
    let _ = s1.kill();
    let _ = s1.wait();
    let mut stdin = driver.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    word.clear();
    said.read_line(&mut word).unwrap();
    let status = driver.wait().unwrap();
    assert!(
        status.success() && word.trim() == "DONE",
        "the browser test failed"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "no screenshot"
    );
    let drained = lines
        .try_iter()
        .chain(std::iter::from_fn(|| {
            lines.recv_timeout(std::time::Duration::from_secs(5)).ok()
        }))
        .any(|l| l.contains("admin change: app/s2 is now drain"));
    assert!(drained, "halo did not log the drain");
    // `halo status` shows the same: what the peer answers, asked over DNS.
    let out = Command::new(env!("CARGO_BIN_EXE_halo"))
        .args(["status", "--admin", &format!("http://{admin}")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!("peer {peer_dns} (site west) answers 192.0.2.20")),
        "{table}"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &halo.id().to_string()])
        .status();
    assert!(halo.wait().unwrap().success());
    let _ = s2.kill();
    let _ = s2.wait();
    let _ = Command::new("kill")
        .args(["-TERM", &peer.id().to_string()])
        .status();
    assert!(peer.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
