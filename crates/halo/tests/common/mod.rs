//! Helpers shared by the namespace tests (examples_netns.rs, vrrp_netns.rs).

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::process::Command;

/// Whether a test that needs root can run; panics in CI when it cannot.
pub(crate) fn can_run(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root (network namespaces) and CI runs as root"
    );
    // The skip must be visible in the test output (the one place it shows).
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED {test}: needs root for network namespaces (runs in CI)");
    }
    false
}

/// Runs a command; panics with its stderr when it fails.
pub(crate) fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `program` (an absolute path) is installed; panics in CI when it
/// is not (scripts/test installs `package`), says SKIPPED otherwise.
pub(crate) fn have(program: &str, package: &str) -> bool {
    if std::path::Path::new(program).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is missing in CI: scripts/test installs {package}"
    );
    #[allow(clippy::print_stderr, reason = "a skipped test says so")]
    {
        eprintln!("SKIPPED: {program} not installed (apt-get install {package})");
    }
    false
}

/// A bridge `br0` in a new namespace `bridge`.
pub(crate) fn bridge(bridge: &str) {
    sh(&["ip", "netns", "add", bridge]);
    sh(&["ip", "-n", bridge, "link", "add", "br0", "type", "bridge"]);
    sh(&["ip", "-n", bridge, "link", "set", "br0", "up"]);
}

/// A new namespace `ns` on `bridge`'s br0 through a veth (`port` on the
/// bridge side, `ifname` inside) with `addrs` ("address/prefix"; IPv6 ones
/// without duplicate address detection), link and loopback up.
pub(crate) fn bridge_host(bridge: &str, ns: &str, port: &str, ifname: &str, addrs: &[String]) {
    sh(&["ip", "netns", "add", ns]);
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    // No duplicate address detection on the new interface's link-local
    // address either: until it ends (about 1 s) the address is tentative and
    // IPv6 VRRP cannot send from it.
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.default.accept_dad=0",
    ]);
    sh(&[
        "ip", "-n", bridge, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns",
        ns,
    ]);
    sh(&["ip", "-n", bridge, "link", "set", port, "master", "br0"]);
    sh(&["ip", "-n", bridge, "link", "set", port, "up"]);
    for addr in addrs {
        let mut args = vec!["ip", "-n", ns, "addr", "add", addr, "dev", ifname];
        if addr.contains(':') {
            args.push("nodad");
        }
        sh(&args);
    }
    sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
}

/// `python3 -m http.server` in `ns` on `addr:port`, serving `root`.
pub(crate) fn http_server(
    ns: &str,
    addr: &str,
    port: u16,
    root: &std::path::Path,
) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-m", "http.server"])
        .args(["--bind", addr, &port.to_string(), "--directory"])
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The lines of `r` (a child's stderr), read on a thread and delivered
/// through a channel, so a test can wait for one with a deadline.
pub(crate) fn lines_of(
    r: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(r)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// `halo run -c path`, its stderr lines delivered through a channel.
pub(crate) fn run_halo(
    path: &std::path::Path,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    run_halo_with(&[], path)
}

/// `halo <global options> run -c path` (e.g. `--log-format json`), its
/// stderr lines delivered through a channel.
pub(crate) fn run_halo_with(
    options: &[&str],
    path: &std::path::Path,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_halo"))
        .args(options)
        .arg("run")
        .arg("-c")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    (child, lines)
}

/// The next line containing `needle` (20 s deadline); any line containing
/// "reload rejected" fails the test.
pub(crate) fn wait_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line containing {needle:?} within 20s"));
        assert!(
            needle.contains("reload rejected") || !line.contains("reload rejected"),
            "{line}"
        );
        if line.contains(needle) {
            return line;
        }
    }
}

/// The `addr=` field of a log line.
pub(crate) fn addr_field(line: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"))
        .to_owned()
}

/// A self-signed P-256 certificate `dir/name.pem` with its key
/// `dir/name.key`, CN `name`, for the DNS names `dns` (by `openssl`).
pub(crate) fn self_signed(dir: &std::path::Path, name: &str, dns: &[&str]) {
    let san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
            "-addext",
            &format!("subjectAltName={}", san.join(",")),
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
