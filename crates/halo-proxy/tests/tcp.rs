//! TCP mode through real sockets: backends on 127.0.0.1:0 that say their name
//! and then echo, the proxy built from config text as `halo run` builds it.

mod common;

use common::Running;
use halo_health::ServerKey;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A backend: sends "<name>\n", then echoes until EOF. Abort the handle to stop
/// it listening (new connections are refused).
async fn backend(name: &str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name = format!("{name}\n");
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = sock.into_split();
                if w.write_all(name.as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, task)
}

async fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

trait Tcp {
    async fn who(&self) -> String;
    async fn tally(&self, n: usize) -> HashMap<String, usize>;
}

impl Tcp for Running {
    /// Connects and returns the name of the server reached.
    async fn who(&self) -> String {
        let sock = TcpStream::connect(self.addr()).await.unwrap();
        let mut lines = BufReader::new(sock);
        let mut name = String::new();
        tokio::time::timeout(Duration::from_secs(10), lines.read_line(&mut name))
            .await
            .expect("no answer within 10s")
            .unwrap();
        assert!(
            name.ends_with('\n'),
            "connection closed without a server: {name:?}"
        );
        name.trim_end().to_owned()
    }

    async fn tally(&self, n: usize) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for _ in 0..n {
            *seen.entry(self.who().await).or_insert(0) += 1;
        }
        seen
    }
}

fn tcp_listener(pool: &str) -> String {
    format!(
        "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"{pool}\"\n"
    )
}

fn server(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!("[[pool.server]]\nname = \"{name}\"\naddress = \"{addr}\"\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_counts_follow_weights_exactly() {
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let toml = format!(
        "{}[[pool]]\nname = \"p\"\n{}{}",
        tcp_listener("p"),
        server("a", a, ""),
        server("b", b, "weight = 2")
    );
    let run = Running::start(&toml).await;
    let seen = run.tally(30).await;
    assert_eq!(seen, HashMap::from([("a".into(), 10), ("b".into(), 20)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_pass_exactly_both_ways_with_half_close() {
    let (a, _ta) = backend("a").await;
    let toml = format!(
        "{}[[pool]]\nname = \"p\"\n{}",
        tcp_listener("p"),
        server("a", a, "")
    );
    let run = Running::start(&toml).await;

    let payload: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    let sock = TcpStream::connect(run.addr()).await.unwrap();
    let (mut r, mut w) = sock.into_split();
    let send = {
        let payload = payload.clone();
        async move {
            w.write_all(&payload).await.unwrap();
            // Half-close: the echo server sees EOF through the proxy and finishes.
            w.shutdown().await.unwrap();
        }
    };
    let receive = async move {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(send, receive)
    })
    .await
    .unwrap();
    assert_eq!(got.len(), "a\n".len() + payload.len());
    assert_eq!(&got[..2], b"a\n");
    assert!(got[2..] == payload[..], "payload corrupted in transit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_is_retried_on_another_server_and_nothing_fails() {
    let dead = closed_port().await;
    let (live, _t) = backend("live").await;
    let toml = format!(
        "{}[[pool]]\nname = \"p\"\n[pool.passive]\nerror_limit = 3\n{}{}",
        tcp_listener("p"),
        server("dead", dead, ""),
        server("live", live, "")
    );
    let run = Running::start(&toml).await;
    // Every connection reaches the live server, including those first sent to
    // the dead one (no active check: only the refused connects reveal it).
    assert_eq!(run.tally(20).await, HashMap::from([("live".into(), 20)]));
    // Three refused connects in a row: passive detection ejected it.
    assert!(
        !run.registry
            .health(&ServerKey::new("p", "dead"))
            .unwrap()
            .is_up()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_serve_only_when_every_primary_is_down() {
    let (p1, t1) = backend("p1").await;
    let (p2, t2) = backend("p2").await;
    let (b1, _tb1) = backend("b1").await;
    let (b2, _tb2) = backend("b2").await;
    let check = "[pool.check]\ninterval = \"50ms\"\nfall = 1\n";
    let pool = |name: &str, all: bool| {
        format!(
            "[[pool]]\nname = \"{name}\"\nuse_all_backups = {all}\n{check}{}{}{}{}",
            server("p1", p1, ""),
            server("p2", p2, ""),
            server("b1", b1, "backup = true"),
            server("b2", b2, "backup = true")
        )
    };
    let first = Running::start(&format!(
        "{}{}",
        tcp_listener("first"),
        pool("first", false)
    ))
    .await;
    let all = Running::start(&format!("{}{}", tcp_listener("all"), pool("all", true))).await;

    // Primaries up: backups get nothing.
    assert_eq!(
        first.tally(10).await,
        HashMap::from([("p1".into(), 5), ("p2".into(), 5)])
    );

    // One primary down: the other takes everything, still no backup.
    t1.abort();
    first.wait_down("first", "p1").await;
    assert_eq!(first.tally(6).await, HashMap::from([("p2".into(), 6)]));

    // Every primary down: only the first backup, unless use_all_backups.
    t2.abort();
    first.wait_down("first", "p2").await;
    all.wait_down("all", "p1").await;
    all.wait_down("all", "p2").await;
    assert_eq!(first.tally(6).await, HashMap::from([("b1".into(), 6)]));
    assert_eq!(
        all.tally(6).await,
        HashMap::from([("b1".into(), 3), ("b2".into(), 3)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_balance_keeps_a_client_on_one_server() {
    let mut tasks = Vec::new();
    let mut servers = String::new();
    for name in ["s1", "s2", "s3", "s4"] {
        let (addr, t) = backend(name).await;
        tasks.push(t);
        servers.push_str(&server(name, addr, ""));
    }
    let toml = format!(
        "{}[[pool]]\nname = \"p\"\nbalance = \"source\"\n{servers}",
        tcp_listener("p")
    );
    let run = Running::start(&toml).await;
    let seen = run.tally(12).await;
    assert_eq!(seen.len(), 1, "one client address, one server: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_v1_tells_the_server_who_the_client_is() {
    // A backend that answers with the first line it receives: the PROXY header.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut line = String::new();
                let _ = BufReader::new(r).read_line(&mut line).await;
                let _ = w.write_all(line.as_bytes()).await;
            });
        }
    });
    let toml = format!(
        "{}[[pool]]\nname = \"p\"\nsend_proxy = \"v1\"\n{}",
        tcp_listener("p"),
        server("s", addr, "")
    );
    let run = Running::start(&toml).await;
    let sock = TcpStream::connect(run.addr()).await.unwrap();
    let client = sock.local_addr().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(sock).read_line(&mut line),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        line,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            client.port(),
            run.addr().port()
        )
    );
}
