//! HTTP mode through real sockets: hyper backends on 127.0.0.1:0, the proxy
//! built from config text as `halo run` builds it, clients over raw TCP (for
//! the malformed and slow cases) or hyper's HTTP/1.1 and HTTP/2 clients.

mod common;

use common::Running;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(20);

type BoxBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn full(text: impl Into<Bytes>) -> BoxBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A backend named `name`. Paths:
/// - `/echo`: streams the request body back;
/// - `/slow/MS`: answers after MS milliseconds;
/// - `/status/N`: answers status N;
/// - anything else: "<name>\n" then the request headers it saw, one per line.
async fn backend(name: &str) -> (SocketAddr, Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name: Arc<str> = name.into();
    let (kill, killed) = tokio::sync::watch::channel(());
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let name = Arc::clone(&name);
            let mut killed = killed.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let name = Arc::clone(&name);
                    async move { Ok::<_, Infallible>(answer(&name, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), service)
                    .with_upgrades();
                // Killed: the socket closes mid-whatever, like a crashed server.
                tokio::select! {
                    _ = conn => {}
                    _ = killed.changed() => {}
                }
            });
        }
    });
    (addr, Backend { kill, task })
}

/// A running backend; dropping it kills it.
struct Backend {
    kill: tokio::sync::watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Stops listening and closes every open connection at once.
    fn kill(&self) {
        self.task.abort();
        self.kill.send_replace(());
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn answer(name: &str, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_owned();
    if path == "/ws" {
        // A WebSocket-style upgrade: 101, then echo every byte.
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            if let Ok(io) = upgrade.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(io));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(full(""));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        resp.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        return resp;
    }
    if path == "/echo" {
        let mut resp = Response::new(req.into_body().boxed());
        resp.headers_mut().insert("x-server", name.parse().unwrap());
        return resp;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        return Response::new(full(format!("{name}\n")));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let mut resp = Response::new(full(format!("{name}\n")));
        *resp.status_mut() = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return resp;
    }
    let mut text = format!("{name}\n");
    for (k, v) in req.headers() {
        text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
    }
    Response::new(full(text))
}

/// One HTTP/1.1 client connection.
struct Client {
    send: hyper::client::conn::http1::SendRequest<BoxBody>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let sock = TcpStream::connect(addr).await.unwrap();
        Self::over(sock).await
    }

    async fn over(sock: TcpStream) -> Self {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(sock))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        Self { send }
    }

    async fn request(&mut self, req: Request<BoxBody>) -> (StatusCode, String) {
        timeout(DEADLINE, async {
            self.send.ready().await.unwrap();
            let resp = self.send.send_request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        })
        .await
        .expect("no response in time")
    }

    async fn get(&mut self, host: &str, path: &str) -> (StatusCode, String) {
        let req = Request::get(path)
            .header("host", host)
            .body(full(""))
            .unwrap();
        self.request(req).await
    }
}

/// The first line of a backend's answer: the server's name.
fn who(body: &str) -> &str {
    body.lines().next().unwrap_or("")
}

fn http_listener(extra: &str) -> String {
    format!("[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"http\"\n{extra}\n")
}

/// An http listener whose default pool is "p", and that pool.
fn default_pool_p(extra: &str, servers: &[(&str, SocketAddr, &str)]) -> String {
    format!(
        "{}{}",
        http_listener("default_pool = \"p\""),
        pool("p", extra, servers)
    )
}

fn pool(name: &str, extra: &str, servers: &[(&str, SocketAddr, &str)]) -> String {
    let mut s = format!("[[pool]]\nname = \"{name}\"\n{extra}\n");
    for (n, a, x) in servers {
        s.push_str(&format!(
            "[[pool.server]]\nname = \"{n}\"\naddress = \"{a}\"\n{x}\n"
        ));
    }
    s
}

/// Sends raw bytes on a new connection and returns everything the proxy sends
/// back before it closes (or the deadline).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = timeout(DEADLINE, sock.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_wildcard_and_path_routing_with_a_404_naming_the_host() {
    let mut tasks = Vec::new();
    let mut addrs = HashMap::new();
    for n in ["grafana", "grafana-api", "apps", "deep", "fallback"] {
        let (a, t) = backend(n).await;
        tasks.push(t);
        addrs.insert(n, a);
    }
    let routes = "[[listener.route]]\nhost = \"grafana.example.com\"\npool = \"grafana\"\n\
         [[listener.route]]\nhost = \"grafana.example.com\"\npath_prefix = \"/api\"\npool = \"grafana-api\"\n\
         [[listener.route]]\nhost = \"*.apps.example.com\"\npool = \"apps\"\n\
         [[listener.route]]\nhost = \"*.deep.apps.example.com\"\npool = \"deep\"\n";
    let mut toml = http_listener(routes);
    for n in ["grafana", "grafana-api", "apps", "deep"] {
        toml.push_str(&pool(n, "", &[(n, addrs[n], "")]));
    }
    let run = Running::start(&toml).await;
    let mut c = Client::connect(run.addr()).await;
    for (host, path, want) in [
        ("grafana.example.com", "/", "grafana"),
        ("GRAFANA.Example.com:8080", "/dashboards", "grafana"),
        ("grafana.example.com.", "/api/health", "grafana-api"),
        ("x.apps.example.com", "/", "apps"),
        ("a.b.apps.example.com", "/", "apps"),
        ("x.deep.apps.example.com", "/", "deep"),
    ] {
        let (status, body) = c.get(host, path).await;
        assert_eq!((status, who(&body)), (StatusCode::OK, want), "{host}{path}");
    }
    for host in ["apps.example.com", "other.example.com"] {
        let (status, body) = c.get(host, "/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, format!("404 no route for host \"{host}\"\n"));
    }

    // With a default pool, what no route takes goes there.
    let toml = format!(
        "{}{}{}",
        http_listener(
            "default_pool = \"fallback\"\n[[listener.route]]\nhost = \"grafana.example.com\"\npool = \"grafana\"\n"
        ),
        pool("grafana", "", &[("grafana", addrs["grafana"], "")]),
        pool("fallback", "", &[("fallback", addrs["fallback"], "")]),
    );
    let run = Running::start(&toml).await;
    let mut c = Client::connect(run.addr()).await;
    assert_eq!(who(&c.get("unknown.example", "/").await.1), "fallback");
    assert_eq!(who(&c.get("grafana.example.com", "/").await.1), "grafana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_added_and_hop_by_hop_headers_removed() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p("", &[("a", a, "")])).await;
    let mut c = Client::connect(run.addr()).await;
    let req = Request::get("/")
        .header("host", "app.example.com:8080")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "x-secret, keep-alive")
        .header("x-secret", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("x-app", "kept")
        .body(full(""))
        .unwrap();
    let (status, body) = c.request(req).await;
    assert_eq!(status, StatusCode::OK);
    let seen: Vec<&str> = body.lines().skip(1).collect();
    for want in [
        "host: app.example.com:8080",
        "x-forwarded-for: 203.0.113.9, 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: app.example.com:8080",
        "x-app: kept",
    ] {
        assert!(seen.contains(&want), "{want:?} not in {seen:?}");
    }
    for gone in ["x-secret", "keep-alive", "proxy-connection", "connection"] {
        assert!(
            !seen.iter().any(|l| l.starts_with(&format!("{gone}:"))),
            "{gone} passed: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_counts_follow_weights_exactly_over_keep_alive() {
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let (c_, _tc) = backend("c").await;
    let run = Running::start(&default_pool_p(
        "",
        &[
            ("a", a, ""),
            ("b", b, "weight = 3"),
            ("c", c_, "weight = 0"),
        ],
    ))
    .await;
    let mut client = Client::connect(run.addr()).await;
    let mut seen = HashMap::<String, usize>::new();
    for _ in 0..40 {
        let (_, body) = client.get("x", "/").await;
        *seen.entry(who(&body).to_owned()).or_default() += 1;
    }
    assert_eq!(seen, HashMap::from([("a".into(), 10), ("b".into(), 30)]));
    let stats = run.proxy.stats().servers();
    let total: u64 = stats.iter().map(|(_, v)| v.requests).sum();
    assert_eq!(total, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_new_requests_away_from_a_busy_server() {
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let run = Running::start(&default_pool_p(
        "balance = \"least-conn\"",
        &[("a", a, ""), ("b", b, "")],
    ))
    .await;
    // Four slow requests occupy both servers two each; then every quick
    // request goes to whichever has fewer in flight: they alternate, and
    // never pile onto one.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let addr = run.addr();
        slow.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.get("x", "/slow/1500").await
        }));
    }
    let servers = run.proxy.stats();
    timeout(DEADLINE, async {
        loop {
            let active: u64 = servers.servers().iter().map(|(_, v)| v.active).sum();
            if active == 4 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("slow requests never started");
    let per_server: Vec<u64> = servers.servers().iter().map(|(_, v)| v.active).collect();
    assert_eq!(per_server, vec![2, 2]);
    // A fifth long request: one server now has 3. The next quick ones go to
    // the other.
    let addr = run.addr();
    slow.push(tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.get("x", "/slow/1500").await
    }));
    timeout(DEADLINE, async {
        while servers.servers().iter().map(|(_, v)| v.active).sum::<u64>() != 5 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let busy = servers
        .servers()
        .iter()
        .find(|(_, v)| v.active == 3)
        .map(|((_, s), _)| s.clone())
        .unwrap();
    let mut c = Client::connect(run.addr()).await;
    for _ in 0..5 {
        let (_, body) = c.get("x", "/").await;
        assert_ne!(
            who(&body),
            busy,
            "a quick request went to the busier server"
        );
    }
    for s in slow {
        assert_eq!(s.await.unwrap().0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_fails_no_idempotent_request() {
    let (a, ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let toml = format!(
        "{}{}",
        http_listener("default_pool = \"p\""),
        // No active check: only live traffic can find out.
        pool("p", "", &[("a", a, ""), ("b", b, "")])
    );
    let run = Running::start(&toml).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let addr = run.addr();
        let done = Arc::clone(&done);
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut c = Client::connect(addr).await;
            for _ in 0..150 {
                let (status, body) = c.get("x", "/").await;
                if status != StatusCode::OK {
                    failures.push((status, body));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    // Kill server a (its listener and every open connection) mid-load.
    timeout(DEADLINE, async {
        while done.load(Ordering::Relaxed) < 300 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    ta.kill();
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(done.load(Ordering::Relaxed), 1200);
}

/// A raw backend: reads one request head, then runs `reply` on the socket
/// with the head it read.
async fn raw_backend<F, Fut>(reply: F) -> SocketAddr
where
    F: Fn(TcpStream, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let reply = Arc::clone(&reply);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match sock.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                reply(sock, String::from_utf8_lossy(&head).into_owned()).await;
            });
        }
    });
    addr
}

/// Reads one request head from `sock`; `None` when the client closed.
async fn read_head(sock: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match sock.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

// One thread, as each `halo run` proxy thread: idle server connections are
// kept per thread, so a multi-threaded runtime would spread them.
#[tokio::test(flavor = "current_thread")]
async fn every_response_framing_reaches_the_client_intact() {
    // HTTP/1.0, no length: the body runs to the server's close.
    let close = raw_backend(|mut sock, _| async move {
        let _ = sock
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close")
            .await;
    })
    .await;
    // Interim 100 and 103 before the real answer are not forwarded.
    let interim = raw_backend(|mut sock, _| async move {
        let _ = sock
            .write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
            )
            .await;
    })
    .await;
    // Chunked with an extension and a trailer, in small writes.
    let chunked = raw_backend(|mut sock, _| async move {
        for part in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r"[..],
            b"\nabc\r\n2\r\nde",
            b"\r\n0\r\nX-T: 1\r\n\r\n",
        ] {
            if sock.write_all(part).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    // A 101 to a request that asked for no upgrade is a bad server.
    let unasked = raw_backend(|mut sock, _| async move {
        let _ = sock
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
            )
            .await;
    })
    .await;
    // Keep-alive over HEAD (a length but no body), 204 and GET: one connection.
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keep = listener.local_addr().unwrap();
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                while let Some(head) = read_head(&mut sock).await {
                    let reply: &[u8] = if head.starts_with("HEAD") {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                    } else if head.starts_with("GET /none") {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                    };
                    if sock.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let toml = format!(
        "{}[[listener.route]]\nhost = \"close\"\npool = \"close\"\n\
         [[listener.route]]\nhost = \"interim\"\npool = \"interim\"\n\
         [[listener.route]]\nhost = \"chunked\"\npool = \"chunked\"\n\
         [[listener.route]]\nhost = \"keep\"\npool = \"keep\"\n\
         [[listener.route]]\nhost = \"unasked\"\npool = \"unasked\"\n{}{}{}{}{}",
        http_listener(""),
        pool("close", "", &[("c", close, "")]),
        pool("interim", "", &[("i", interim, "")]),
        pool("chunked", "", &[("c", chunked, "")]),
        pool("keep", "", &[("k", keep, "")]),
        pool("unasked", "", &[("u", unasked, "")]),
    );
    let run = Running::start(&toml).await;
    let mut c = Client::connect(run.addr()).await;
    assert_eq!(
        c.get("close", "/").await,
        (StatusCode::OK, "until the close".into())
    );
    assert_eq!(
        c.get("interim", "/").await,
        (StatusCode::OK, "final".into())
    );
    assert_eq!(
        c.get("chunked", "/").await,
        (StatusCode::OK, "abcde".into())
    );
    assert_eq!(
        c.get("unasked", "/").await,
        (
            StatusCode::BAD_GATEWAY,
            "502 the server sent an invalid response\n".into()
        )
    );
    for _ in 0..3 {
        let head = Request::head("/")
            .header("host", "keep")
            .body(full(""))
            .unwrap();
        assert_eq!(c.request(head).await, (StatusCode::OK, String::new()));
        assert_eq!(
            c.get("keep", "/none").await,
            (StatusCode::NO_CONTENT, String::new())
        );
        assert_eq!(c.get("keep", "/").await, (StatusCode::OK, "hello".into()));
    }
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one server connection for 9 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_400_and_431() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p("", &[("a", a, "")])).await;
    let out = raw(
        run.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    );
    let out = raw(run.addr(), big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // Just under the limit passes.
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "b".repeat(60 * 1024)
    );
    let out = raw(run.addr(), fits.as_bytes()).await;
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{}",
        &out[..out.len().min(200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_server_502_nothing_healthy_503_slow_server_504() {
    let junk = raw_backend(|mut sock, _| async move {
        let _ = sock.write_all(b"this is not http\r\n\r\n").await;
    })
    .await;
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (slow, _t) = backend("slow").await;
    let toml = format!(
        "{}[[listener.route]]\nhost = \"junk\"\npool = \"junk\"\n\
         [[listener.route]]\nhost = \"closed\"\npool = \"closed\"\n\
         [[listener.route]]\nhost = \"slow\"\npool = \"slow\"\n{}{}{}",
        http_listener(""),
        pool("junk", "", &[("j", junk, "")]),
        pool(
            "closed",
            "retries = 2",
            &[("c1", closed, ""), ("c2", closed, "")]
        ),
        pool(
            "slow",
            "timeouts = { server = \"200ms\" }",
            &[("s", slow, "")]
        ),
    );
    let run = Running::start(&toml).await;
    let mut c = Client::connect(run.addr()).await;
    assert_eq!(
        c.get("junk", "/").await,
        (
            StatusCode::BAD_GATEWAY,
            "502 the server sent an invalid response\n".into()
        )
    );
    assert_eq!(
        c.get("closed", "/").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 no server could be reached\n".into()
        )
    );
    assert_eq!(
        c.get("slow", "/slow/3000").await,
        (
            StatusCode::GATEWAY_TIMEOUT,
            "504 the server did not answer in time\n".into()
        )
    );
    // The same server answers what it can answer in time.
    assert_eq!(c.get("slow", "/").await.0, StatusCode::OK);
    let pools: HashMap<String, _> = run.proxy.stats().pools().into_iter().collect();
    assert_eq!(pools["junk"].responses[4], 1);
    assert_eq!(pools["closed"].retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_body_gets_408_and_the_server_is_not_blamed() {
    // The server reads the body to its end (it never comes), then closes.
    let server = raw_backend(|mut sock, _| async move {
        let _ = sock.read_to_end(&mut Vec::new()).await;
    })
    .await;
    let toml = default_pool_p(
        "timeouts = { client = \"300ms\", server = \"10s\" }",
        &[("s", server, "")],
    );
    let run = Running::start(&toml).await;
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = timeout(DEADLINE, sock.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(
        out.ends_with("408 the request body did not arrive in time\n"),
        "{out}"
    );
    let pools: HashMap<String, _> = run.proxy.stats().pools().into_iter().collect();
    assert_eq!(pools["p"].retries, 0);
    let servers = run.proxy.stats().servers();
    assert!(servers.iter().all(|(_, s)| s.errors == 0), "{servers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conns_queues_then_503_after_the_queue_timeout() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p(
        "timeouts = { queue = \"300ms\" }",
        &[("a", a, "max_conns = 1")],
    ))
    .await;
    let busy = {
        let addr = run.addr();
        tokio::spawn(async move { Client::connect(addr).await.get("x", "/slow/2000").await })
    };
    let stats = run.proxy.stats();
    timeout(DEADLINE, async {
        while stats.servers()[0].1.active != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let mut c = Client::connect(run.addr()).await;
    assert_eq!(
        c.get("x", "/").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 every server is busy: queue timeout\n".into()
        )
    );
    assert_eq!(busy.await.unwrap().0, StatusCode::OK);

    // A request that finds a slot within the queue time waits and succeeds.
    let run = Running::start(&default_pool_p(
        "timeouts = { queue = \"10s\" }",
        &[("a", a, "max_conns = 1")],
    ))
    .await;
    let mut handles = Vec::new();
    for _ in 0..3 {
        let addr = run.addr();
        handles.push(tokio::spawn(async move {
            Client::connect(addr).await.get("x", "/slow/200").await
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap().0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_off() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p(
        "timeouts = { request_header = \"300ms\" }",
        &[("a", a, "")],
    ))
    .await;
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The head never ends; the proxy must close long before our deadline.
    let mut out = Vec::new();
    let closed = timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "connection still open after 10s");
    let text = String::from_utf8_lossy(&out);
    // HAProxy's answer to `timeout http-request` too: 408.
    assert!(
        text.starts_with("HTTP/1.1 408")
            && text.ends_with("\r\n\r\n408 the request head did not arrive in time\n"),
        "{text}"
    );

    // The same limit closes a keep-alive connection that sits idle after a
    // response, and one that never sends a byte (docs/config.md says both).
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let closed = timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
    assert!(
        closed.is_ok(),
        "idle keep-alive connection still open after 10s"
    );
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let mut silent = TcpStream::connect(run.addr()).await.unwrap();
    let closed = timeout(Duration::from_secs(10), silent.read_to_end(&mut Vec::new())).await;
    assert!(closed.is_ok(), "silent connection still open after 10s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_in_and_out() {
    let (a, _t) = backend("a").await;
    // Received: the client address in the header becomes X-Forwarded-For.
    let toml = format!(
        "{}{}",
        http_listener("default_pool = \"p\"\naccept_proxy = true"),
        pool("p", "", &[("a", a, "")])
    );
    let run = Running::start(&toml).await;
    let v2 = halo_proxy::proxy_protocol::header(
        halo_config::SendProxy::V2,
        "[2001:db8::7]:4000".parse().unwrap(),
        "[2001:db8::20]:80".parse().unwrap(),
    );
    for (header, client) in [
        (
            b"PROXY TCP4 198.51.100.7 192.0.2.20 5555 80\r\n".to_vec(),
            "198.51.100.7",
        ),
        (v2, "2001:db8::7"),
    ] {
        let mut sock = TcpStream::connect(run.addr()).await.unwrap();
        sock.write_all(&header).await.unwrap();
        let mut c = Client::over(sock).await;
        let (status, body) = c.get("x", "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(&format!("x-forwarded-for: {client}\n")),
            "{body}"
        );
    }
    // No header: refused.
    let out = raw(run.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(out, "");

    // Sent: a server behind send_proxy sees the header before each request.
    let first_line = raw_backend(|mut sock, head| async move {
        let line = head.lines().next().unwrap_or("").to_owned();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{line}",
            line.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
    })
    .await;
    let run = Running::start(&default_pool_p(
        "send_proxy = \"v1\"",
        &[("s", first_line, "")],
    ))
    .await;
    let sock = TcpStream::connect(run.addr()).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut c = Client::over(sock).await;
    let (status, body) = c.get("x", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {port} {}",
            run.addr().port()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_tunnels_bytes_both_ways() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p("", &[("a", a, "")])).await;
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    timeout(DEADLINE, async {
        while !head.ends_with(b"\r\n\r\n") {
            sock.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // A masked text frame "hello", then a second one: echoed byte for byte.
    for frame in [
        &[
            0x81u8,
            0x85,
            1,
            2,
            3,
            4,
            b'h' ^ 1,
            b'e' ^ 2,
            b'l' ^ 3,
            b'l' ^ 4,
            b'o' ^ 1,
        ][..],
        &[0x81u8, 0x82, 9, 9, 9, 9, b'h' ^ 9, b'i' ^ 9][..],
    ] {
        sock.write_all(frame).await.unwrap();
        let mut back = vec![0u8; frame.len()];
        timeout(DEADLINE, sock.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_and_100_continue_works() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p("", &[("a", a, "")])).await;

    // 16 MiB in 64 KiB chunks (chunked: no length given), echoed back.
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(4);
    let sender = {
        let chunk = Bytes::from(chunk.clone());
        tokio::spawn(async move {
            for _ in 0..256 {
                tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
            }
        })
    };
    let body = StreamBody::new(tokio_stream(rx)).boxed();
    let mut c = Client::connect(run.addr()).await;
    let req = Request::post("/echo")
        .header("host", "x")
        .body(body)
        .unwrap();
    let resp = timeout(DEADLINE, async {
        c.send.ready().await.unwrap();
        c.send.send_request(req).await.unwrap()
    })
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let got = timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    sender.await.unwrap();
    assert_eq!(got.len(), 256 * 65_536);
    assert!(
        got.chunks(65_536).all(|c| c == &chunk[..]),
        "body corrupted"
    );

    // Expect: 100-continue: the client waits for the 100 before its body.
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut interim = [0u8; 25];
    timeout(DEADLINE, sock.read_exact(&mut interim))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    sock.write_all(b"hello").await.unwrap();
    let mut resp = vec![0u8; 512];
    let mut got = String::new();
    timeout(DEADLINE, async {
        while !got.ends_with("hello") {
            let n = sock.read(&mut resp).await.unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&resp[..n]));
        }
    })
    .await
    .unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

/// An mpsc receiver as a stream of frames, without pulling in tokio-stream.
fn tokio_stream<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> {
    struct Rx<T>(tokio::sync::mpsc::Receiver<T>);
    impl<T> futures_core::Stream for Rx<T> {
        type Item = T;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            self.get_mut().0.poll_recv(cx)
        }
    }
    Rx(rx)
}

/// An HTTP/2 client connection (prior knowledge) and the task driving it,
/// which returns when the connection ends.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<BoxBody>,
    JoinHandle<hyper::Result<()>>,
) {
    let sock = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(sock))
            .await
            .unwrap();
    (send, tokio::spawn(conn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_from_clients() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p("", &[("a", a, "")])).await;
    let (mut send, _conn) = h2_connect(run.addr()).await;
    // Several streams at once on one connection.
    let mut answers = Vec::new();
    for i in 0..5 {
        let req = Request::get(format!("http://app.example.com/{i}"))
            .body(full(""))
            .unwrap();
        answers.push(send.send_request(req));
    }
    for a in answers {
        let resp = timeout(DEADLINE, a).await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(who(&body), "a");
        // HTTP/2's :authority reaches the HTTP/1.1 server as Host.
        assert!(body.contains("host: app.example.com\n"), "{body}");
    }
}

/// An HTTP/2 connection with no stream open for `request_header` is shut
/// with GOAWAY, as an idle HTTP/1.1 keep-alive connection is closed; a
/// stream open longer than that is not cut, and its connection is not
/// counted idle while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_shut() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p(
        "timeouts = { request_header = \"300ms\" }",
        &[("a", a, "")],
    ))
    .await;
    let (mut send, conn) = h2_connect(run.addr()).await;
    // A response that takes 1 s, three times the idle limit.
    let req = Request::get("http://app.example.com/slow/1000")
        .body(full(""))
        .unwrap();
    let resp = timeout(DEADLINE, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(who(&String::from_utf8_lossy(&body)), "a");
    // Now idle: the proxy ends the connection (the client's connection
    // task returns) long before the deadline.
    let ended = timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "idle HTTP/2 connection still open after 10s");
}

/// A reload that removes the listener shuts its HTTP/2 connections too
/// (GOAWAY at the next check, at most `request_header` later), even one that
/// is never idle: its open stream still finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listeners_http2_connection_is_shut() {
    let (a, _t) = backend("a").await;
    let config = |listener: &str| {
        format!(
            "[[listener]]\nname = \"{listener}\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"http\"\ndefault_pool = \"p\"\n{}",
            pool(
                "p",
                "timeouts = { request_header = \"500ms\" }",
                &[("a", a, "")]
            )
        )
    };
    let mut run = Running::start(&config("old")).await;
    let (mut send, conn) = h2_connect(run.addr()).await;
    // A stream that stays open 4 s: the connection is never idle meanwhile.
    let slow = send.send_request(
        Request::get("http://app.example.com/slow/4000")
            .body(full(""))
            .unwrap(),
    );
    let slow = tokio::spawn(async move {
        let resp = slow.await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    let renamed = config("new");
    run.registry.apply(&parse(&renamed));
    run.proxy.reload(&parse(&renamed), &run.registry).unwrap();
    // The GOAWAY comes while the slow stream is still open: a new request
    // on the connection is refused before that stream's answer is there.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no GOAWAY");
        let refused = match send.ready().await {
            Err(_) => true,
            Ok(()) => {
                let req = Request::get("http://app.example.com/")
                    .body(full(""))
                    .unwrap();
                send.send_request(req).await.is_err()
            }
        };
        if refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !slow.is_finished(),
        "GOAWAY only after the open stream ended"
    );
    let (status, body) = timeout(DEADLINE, slow).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who(&String::from_utf8_lossy(&body)), "a");
    assert!(
        timeout(DEADLINE, conn).await.is_ok(),
        "connection still open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_is_retried_after_an_empty_response_but_a_post_is_not() {
    // Reads the request, then closes without a byte of response.
    let closer = raw_backend(|sock, _| async move { drop(sock) }).await;
    let (good, _t) = backend("good").await;
    let run = Running::start(&default_pool_p(
        "balance = \"first\"",
        &[("closer", closer, ""), ("good", good, "")],
    ))
    .await;
    let mut c = Client::connect(run.addr()).await;
    let (status, body) = c.get("x", "/").await;
    assert_eq!((status, who(&body)), (StatusCode::OK, "good"));
    let req = Request::post("/")
        .header("host", "x")
        .body(full("a body that may have been acted on"))
        .unwrap();
    assert_eq!(
        c.request(req).await,
        (
            StatusCode::BAD_GATEWAY,
            "502 the server closed the connection without a response\n".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_affinity_moves_only_a_dead_servers_clients() {
    let mut backends = Vec::new();
    let mut servers = Vec::new();
    for n in ["s1", "s2", "s3", "s4"] {
        let (addr, b) = backend(n).await;
        backends.push(b);
        servers.push((n, addr));
    }
    let list: Vec<(&str, SocketAddr, &str)> = servers.iter().map(|(n, a)| (*n, *a, "")).collect();
    let toml = format!(
        "{}{}",
        // Clients are told apart by the PROXY header: 200 addresses on one host.
        http_listener("default_pool = \"p\"\naccept_proxy = true"),
        pool(
            "p",
            "balance = \"source\"\n[pool.check]\ninterval = \"50ms\"\nfall = 1",
            &list
        )
    );
    let run = Running::start(&toml).await;
    let ask = |client: String| {
        let addr = run.addr();
        async move {
            let mut sock = TcpStream::connect(addr).await.unwrap();
            let header = format!("PROXY TCP4 {client} 192.0.2.20 4000 80\r\n");
            sock.write_all(header.as_bytes()).await.unwrap();
            let mut c = Client::over(sock).await;
            let (status, body) = c.get("x", "/").await;
            assert_eq!(status, StatusCode::OK);
            who(&body).to_owned()
        }
    };
    let clients: Vec<String> = (0..200)
        .map(|i| format!("198.51.{}.{}", 100 + i / 100, i % 100 + 1))
        .collect();
    let mut before = HashMap::new();
    for c in &clients {
        before.insert(c.clone(), ask(c.clone()).await);
    }
    // Stable: asking again gives the same answers.
    for c in clients.iter().take(50) {
        assert_eq!(ask(c.clone()).await, before[c]);
    }
    let per_server = |m: &HashMap<String, String>, s: &str| m.values().filter(|v| *v == s).count();
    for (n, _) in &servers {
        assert!(per_server(&before, n) > 20, "{n} got too few: {before:?}");
    }
    backends[1].kill();
    run.wait_down("p", "s2").await;
    let mut after = HashMap::new();
    for c in &clients {
        after.insert(c.clone(), ask(c.clone()).await);
    }
    for c in &clients {
        if before[c] == "s2" {
            assert_ne!(after[c], "s2");
        } else {
            assert_eq!(after[c], before[c], "client {c} moved off a live server");
        }
    }
}

/// An example file from `examples/`, with its binds moved to 127.0.0.1:0,
/// each `from` address replaced by a local backend, and the tiers this
/// crate does not run (from `cut_at` on) left out.
fn example(file: &str, cut_at: &str, addresses: &[(String, SocketAddr)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    if let Some(i) = text.find(cut_at) {
        text.truncate(i);
    }
    for (from, to) in addresses {
        assert!(text.contains(from), "{from} not in {file}");
        text = text.replace(from.as_str(), &to.to_string());
    }
    for port in ["30800", "80", "81"] {
        text = text.replace(&format!("\"0.0.0.0:{port}\""), "\"127.0.0.1:0\"");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_virtual_hosts_two_hosts_on_one_port_reach_two_pools() {
    let mut keep = Vec::new();
    let mut map = Vec::new();
    for (name, from) in [
        ("grafana-0", "192.0.2.101:3000"),
        ("kibana-0", "192.0.2.111:5601"),
        ("kibana-1", "192.0.2.112:5601"),
        ("router-0", "192.0.2.121:80"),
        ("router-1", "192.0.2.122:80"),
    ] {
        let (addr, b) = backend(name).await;
        keep.push(b);
        map.push((from.to_owned(), addr));
    }
    let run = Running::start(&example("virtual-hosts.toml", "[gslb]", &map)).await;
    let mut c = Client::connect(run.addr()).await;
    let (_, body) = c.get("grafana.under.my-domain.example:30800", "/").await;
    assert_eq!(who(&body), "grafana-0");
    let mut kibana = std::collections::HashSet::new();
    let mut apps = std::collections::HashSet::new();
    for i in 0..4 {
        kibana.insert(who(&c.get("kibana.under.my-domain.example", "/").await.1).to_owned());
        let host = format!("app{i}.apps.my-domain.example");
        apps.insert(who(&c.get(&host, "/").await.1).to_owned());
    }
    assert_eq!(kibana, ["kibana-0", "kibana-1"].map(String::from).into());
    assert!(apps.iter().all(|a| a.starts_with("router-")), "{apps:?}");
    let (status, body) = c.get("unknown.under.my-domain.example", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("unknown.under.my-domain.example"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_two_datacenters_local_cluster_first_then_backups() {
    let mut backends = HashMap::new();
    let mut map = Vec::new();
    for clus in ["clus1", "clus2"] {
        for i in 0..3 {
            let name = format!("{clus}-infra-{i}");
            let (addr, b) = backend(&name).await;
            // The same backend stands for the router on :80 and on :81.
            for port in [80, 81] {
                map.push((format!("{name}.example.com:{port}"), addr));
            }
            backends.insert(name, b);
        }
    }
    let run = Running::start(&example("two-datacenters.toml", "[[vip]]", &map)).await;
    let (name, main80) = &run.proxy.bound()[0];
    assert_eq!(name, "main80");
    // The seed's curl loop, a new connection each time (main80 is mode tcp).
    let curl_loop = |n: usize| async move {
        let mut seen = Vec::new();
        for _ in 0..n {
            let mut c = Client::connect(*main80).await;
            let (status, body) = c.get("www.example.com", "/").await;
            assert_eq!(status, StatusCode::OK);
            seen.push(who(&body).to_owned());
        }
        seen
    };
    let before = curl_loop(10).await;
    assert!(before.iter().all(|s| s.starts_with("clus1-")), "{before:?}");
    // A client keeps its router (balance source).
    assert!(before.iter().all(|s| *s == before[0]), "{before:?}");

    for i in 0..3 {
        backends[&format!("clus1-infra-{i}")].kill();
    }
    for i in 0..3 {
        run.wait_down("router80", &format!("clus1-infra-{i}")).await;
    }
    let after = curl_loop(10).await;
    assert!(after.iter().all(|s| s.starts_with("clus2-")), "{after:?}");
}

/// One response read off a raw client socket: head, then the body as its
/// framing says (Content-Length, chunked, or to the close).
async fn read_response(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_request: bool,
) -> (String, Vec<u8>) {
    timeout(DEADLINE, async {
        let head_len = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            assert!(fill(sock, buf).await, "closed before a whole head: {buf:?}");
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len);
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let mut body = Vec::new();
        if head_request || head.starts_with("HTTP/1.1 204") {
        } else if lower.contains("transfer-encoding: chunked") {
            loop {
                let line_end = loop {
                    if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    assert!(fill(sock, buf).await, "closed mid-chunk");
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16)
                        .unwrap();
                while buf.len() < line_end + 2 + size + 2 {
                    assert!(fill(sock, buf).await, "closed mid-chunk");
                }
                body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
                buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            while buf.len() < n {
                assert!(fill(sock, buf).await, "closed mid-body");
            }
            body = buf.drain(..n).collect();
        } else {
            while fill(sock, buf).await {}
            body = std::mem::take(buf);
        }
        (head, body)
    })
    .await
    .expect("no whole response in time")
}

/// Reads more into `buf`; `false` at the close.
async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match sock.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halos_own_answers_carry_a_short_body() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&default_pool_p("", &[("a", a, "")])).await;
    let cases: [(&[u8], &str); 9] = [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            "400 malformed request: invalid header name",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "400 missing Host header"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "400 more than one Host header",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "400 conflicting Content-Length values",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "400 invalid Content-Length",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "501 unsupported Transfer-Encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "400 Transfer-Encoding does not end with chunked",
        ),
        (
            b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400 Transfer-Encoding in an HTTP/1.0 request",
        ),
        (
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "501 CONNECT is not supported",
        ),
    ];
    for (request, expect) in cases {
        let out = raw(run.addr(), request).await;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", &expect[..3]))
                && head.contains("connection: close")
                && head.contains("content-type: text/plain"),
            "{out}"
        );
        assert!(
            body.starts_with(&expect[..3]) && out.contains(expect),
            "{out}"
        );
    }
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    let out = raw(
        run.addr(),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 431") && out.ends_with("431 more than 128 request headers\n"),
        "{out}"
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    );
    let out = raw(run.addr(), big.as_bytes()).await;
    assert!(
        out.ends_with("\r\n\r\n431 request head over 64 KiB\n"),
        "{out}"
    );
    // A malformed request gets its reason.
    let out = raw(
        run.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    )
    .await;
    assert!(
        out.ends_with("\r\n\r\n400 malformed request: invalid header name\n"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_http_1_0_absolute_form_and_reframed_requests() {
    let (a, _t) = backend("a").await;
    // A server that answers without a length (its close ends the body).
    let close = raw_backend(|mut sock, _| async move {
        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n\r\nto the close").await;
    })
    .await;
    // ...and one that answers chunked.
    let chunked = raw_backend(|mut sock, _| async move {
        let _ = sock
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n0\r\n\r\n",
            )
            .await;
    })
    .await;
    let toml = format!(
        "{}[[listener.route]]\nhost = \"close\"\npool = \"close\"\n\
         [[listener.route]]\nhost = \"chunked\"\npool = \"chunked\"\n{}{}{}",
        http_listener("default_pool = \"p\""),
        pool("p", "", &[("a", a, "")]),
        pool("close", "", &[("c", close, "")]),
        pool("chunked", "", &[("c", chunked, "")]),
    );
    let run = Running::start(&toml).await;

    // Three requests in one write, one with a chunked body: three answers,
    // in order, on the one connection.
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
          GET /three HTTP/1.1\r\nHost: x\r\nX-N: 3\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_response(&mut sock, &mut buf, false).await;
    assert!(
        head.starts_with("HTTP/1.1 200") && body.starts_with(b"a\n"),
        "{head}"
    );
    let (head, body) = read_response(&mut sock, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"abcde");
    let (_, body) = read_response(&mut sock, &mut buf, false).await;
    assert!(String::from_utf8_lossy(&body).contains("x-n: 3"));

    // Absolute-form: its authority is the host; the server gets origin-form.
    sock.write_all(b"GET http://Close/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        .await
        .unwrap();
    // A body to the close reaches an HTTP/1.1 client chunked, and the
    // connection stays open.
    let (head, body) = read_response(&mut sock, &mut buf, false).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert_eq!(body, b"to the close");
    sock.write_all(b"GET http://x/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut sock, &mut buf, false).await;
    let seen = String::from_utf8_lossy(&body);
    assert!(
        seen.contains("host: x\n") && !seen.contains("other"),
        "{seen}"
    );

    // HTTP/1.0 with keep-alive: told so, and the connection carries on.
    let mut old = TcpStream::connect(run.addr()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        old.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut old, &mut buf, false).await;
        assert!(
            head.contains("connection: keep-alive") && body.starts_with(b"a\n"),
            "{head}"
        );
    }
    // HTTP/1.0 and a chunked answer: the plain body, then the close.
    old.write_all(b"GET / HTTP/1.0\r\nHost: chunked\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut old, &mut buf, false).await;
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, b"chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_timeouts_client() {
    // A server with a large answer; it reports when halo stops taking it.
    let (gone_tx, gone) = tokio::sync::mpsc::unbounded_channel::<()>();
    let big = raw_backend(move |mut sock, _| {
        let gone_tx = gone_tx.clone();
        async move {
            let total = 256 * 1024 * 1024;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..total / chunk.len() {
                if sock.write_all(&chunk).await.is_err() {
                    let _ = gone_tx.send(());
                    return;
                }
            }
        }
    })
    .await;
    let run = Running::start(&default_pool_p(
        "timeouts = { client = \"300ms\", server = \"60s\" }",
        &[("big", big, "")],
    ))
    .await;
    let mut sock = TcpStream::connect(run.addr()).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: once the socket buffers are full, halo's writes wait;
    // after `timeouts.client` it closes both sides.
    let mut gone = gone;
    assert!(
        timeout(DEADLINE, gone.recv()).await.is_ok(),
        "halo still holds the server connection for a client that stopped reading"
    );
    drop(sock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_body_gets_400_and_the_server_is_not_blamed() {
    // A server that reads the whole body before it would answer; it sees the
    // cut (EOF) and gives up without a response.
    let reader = raw_backend(|mut sock, _| async move {
        let _ = sock.read_to_end(&mut Vec::new()).await;
    })
    .await;
    let run = Running::start(&default_pool_p(
        "[pool.passive]\nerror_limit = 1",
        &[("r", reader, "")],
    ))
    .await;
    let out = raw(
        run.addr(),
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 400")
            && out.ends_with("400 the request body was cut short or malformed\n"),
        "{out}"
    );
    // One passive error would have marked it down: it is still up.
    let health = run
        .registry
        .health(&halo_health::ServerKey::new("p", "r"))
        .unwrap();
    assert!(health.is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_given_by_name_is_resolved_and_reached() {
    let (a, _t) = backend("a").await;
    let run = Running::start(&format!(
        "{}[[pool]]\nname = \"p\"\n[[pool.server]]\nname = \"a\"\naddress = \"localhost:{}\"\n",
        http_listener("default_pool = \"p\""),
        a.port()
    ))
    .await;
    let mut c = Client::connect(run.addr()).await;
    for _ in 0..3 {
        let (status, body) = c.get("x", "/").await;
        assert_eq!((status, who(&body)), (StatusCode::OK, "a"));
    }
}

/// Pools "pa" and "pb" over backends answering "a" and "b", for the reload
/// tests (the backends run while the second value lives).
async fn pools_a_b() -> (String, (Backend, Backend)) {
    let (a, ta) = backend("a").await;
    let (b, tb) = backend("b").await;
    let pools = format!(
        "{}{}",
        pool("pa", "", &[("a", a, "")]),
        pool("pb", "", &[("b", b, "")])
    );
    (pools, (ta, tb))
}

/// A `[[listener]]` on `bind`.
fn listener_at(name: &str, bind: &str, protocol: &str, pool: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nbind = [\"{bind}\"]\nprotocol = \"{protocol}\"\ndefault_pool = \"{pool}\"\n"
    )
}

fn parse(toml: &str) -> halo_config::Config {
    halo_config::parse(std::path::Path::new("test.toml"), toml).unwrap()
}

/// The kernel's listening sockets on `addr` (IPv4), by inode, from
/// /proc/net/tcp: the same inodes mean the same sockets.
fn listening_inodes(addr: SocketAddr) -> Vec<u64> {
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(a.ip().octets()),
        a.port()
    );
    let mut inodes: Vec<u64> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st ... inode (the tenth field); 0A is LISTEN.
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
                .then(|| f.get(9).and_then(|i| i.parse().ok()))
                .flatten()
        })
        .collect();
    inodes.sort_unstable();
    inodes
}

/// A reload that renames a listener, or gives its address to another one,
/// keeps the socket open (the same kernel socket serves the new listener),
/// so no connection waiting in its accept queue is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_listener_keeps_its_socket() {
    let (pools, _backends) = pools_a_b().await;
    let listener = |name: &str, bind: &str, pool: &str| listener_at(name, bind, "http", pool);
    let mut run = Running::start(&format!("{}{pools}", listener("one", "127.0.0.1:0", "pa"))).await;
    let at = run.addr();
    let before = listening_inodes(at);
    assert!(!before.is_empty());
    assert!(
        raw(at, b"GET / HTTP/1.0\r\n\r\n")
            .await
            .contains("\r\n\r\na\n")
    );

    // "one" becomes "two" on the address it had, with another pool.
    let renamed = format!("{}{pools}", listener("two", &at.to_string(), "pb"));
    run.registry.apply(&parse(&renamed));
    run.proxy.reload(&parse(&renamed), &run.registry).unwrap();
    assert_eq!(run.proxy.bound(), vec![("two".to_owned(), at)]);
    assert_eq!(
        listening_inodes(at),
        before,
        "the same socket, not a new one"
    );
    assert!(
        raw(at, b"GET / HTTP/1.0\r\n\r\n")
            .await
            .contains("\r\n\r\nb\n")
    );

    // Renamed again, now with the address as written: still the same socket.
    let again = format!("{}{pools}", listener("three", &at.to_string(), "pa"));
    run.registry.apply(&parse(&again));
    run.proxy.reload(&parse(&again), &run.registry).unwrap();
    assert_eq!(run.proxy.bound(), vec![("three".to_owned(), at)]);
    assert_eq!(listening_inodes(at), before);
    assert!(
        raw(at, b"GET / HTTP/1.0\r\n\r\n")
            .await
            .contains("\r\n\r\na\n")
    );
}

/// A reload adds a listener (it serves at once), removes one (its socket
/// closes; a keep-alive connection on it gets its next request answered on
/// the old routes, with `connection: close`), changes a listener's protocol
/// on the same socket, and a bind that fails refuses the whole reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_removes_and_reprotocols_listeners() {
    let (pools, _backends) = pools_a_b().await;
    let listener =
        |name: &str, protocol: &str, pool: &str| listener_at(name, "127.0.0.1:0", protocol, pool);
    let first = format!("{}{pools}", listener("one", "http", "pa"));
    let mut run = Running::start(&first).await;
    let one = run.addr();
    let get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut kept = TcpStream::connect(one).await.unwrap();
    kept.write_all(get).await.unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_response(&mut kept, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(who(&String::from_utf8_lossy(&body)), "a");

    // Add "two" (to pb).
    let second = format!(
        "{}{}{pools}",
        listener("one", "http", "pa"),
        listener("two", "http", "pb")
    );
    run.registry.apply(&parse(&second));
    run.proxy.reload(&parse(&second), &run.registry).unwrap();
    let bound = run.proxy.bound();
    assert_eq!(bound.len(), 2, "{bound:?}");
    assert_eq!(bound[0], ("one".to_owned(), one), "one keeps its socket");
    let two = bound[1].1;
    assert!(
        raw(two, b"GET / HTTP/1.0\r\n\r\n")
            .await
            .contains("\r\n\r\nb\n")
    );

    // A bind that fails (the port is held by a socket without
    // SO_REUSEPORT) refuses the reload: nothing changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blocked = format!(
        "{second}[[listener]]\nname = \"three\"\nbind = [\"{}\"]\nprotocol = \"http\"\ndefault_pool = \"pa\"\n",
        taken.local_addr().unwrap()
    );
    let err = run
        .proxy
        .reload(&parse(&blocked), &run.registry)
        .unwrap_err();
    assert!(err.to_string().contains("cannot bind"), "{err}");
    assert_eq!(run.proxy.bound().len(), 2);

    // Remove "one": its socket closes, "two" goes on, and the connection
    // kept alive on "one" is answered once more, then closed.
    let third = format!("{}{pools}", listener("two", "http", "pb"));
    run.registry.apply(&parse(&third));
    run.proxy.reload(&parse(&third), &run.registry).unwrap();
    timeout(DEADLINE, async {
        while TcpStream::connect(one).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the removed listener still accepts");
    kept.write_all(get).await.unwrap();
    let (head, body) = read_response(&mut kept, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(
        who(&String::from_utf8_lossy(&body)),
        "a",
        "served on its first routes"
    );
    assert!(!fill(&mut kept, &mut buf).await, "closed after it");
    let answer = raw(two, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains("\r\n\r\nb\n"), "{answer}");
    assert!(answer.contains("x-forwarded-for"), "http mode: {answer}");

    // "two" becomes a tcp listener on the same socket.
    let fourth = format!("{}{pools}", listener("two", "tcp", "pb"));
    run.proxy.reload(&parse(&fourth), &run.registry).unwrap();
    assert_eq!(run.proxy.bound(), vec![("two".to_owned(), two)]);
    // In tcp mode the bytes reach the backend as they are: no
    // X-Forwarded-For added (the backend echoes the headers it got).
    let answer = raw(two, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains("\r\n\r\nb\n"), "{answer}");
    assert!(!answer.contains("x-forwarded-for"), "{answer}");
}

/// Sends `n` requests for `path` on one connection; the statuses.
async fn statuses(c: &mut Client, path: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.get("x", path).await.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_eject_servers_with_bad_answers_by_default() {
    // Before, passive health counted 5xx by default: ten requests to one URL
    // the servers answer badly made the whole pool answer 503 for 30 s.
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let run = Running::start(&default_pool_p("", &[("a", a, ""), ("b", b, "")])).await;
    let mut c = Client::connect(run.addr()).await;
    let bad = statuses(&mut c, "/status/502", 40).await;
    assert!(bad.iter().all(|s| *s == StatusCode::BAD_GATEWAY), "{bad:?}");
    let good = statuses(&mut c, "/", 20).await;
    assert!(good.iter().all(|s| *s == StatusCode::OK), "{good:?}");
    for s in ["a", "b"] {
        let h = run
            .registry
            .health(&halo_health::ServerKey::new("p", s))
            .unwrap();
        assert!(h.is_serving(), "{s} was ejected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer7_observation_ejects_but_never_the_last_server_up() {
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let passive = "[pool.passive]\nobserve = \"layer7\"\nerror_limit = 2\n";
    let run = Running::start(&default_pool_p(passive, &[("a", a, ""), ("b", b, "")])).await;
    let mut events = run.registry.hub().subscribe();
    let mut c = Client::connect(run.addr()).await;
    // Bad answers from both: one server may go (half the pool).
    statuses(&mut c, "/status/500", 4).await;
    let down = timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
    assert!(!down.transition.up, "{down:?}");
    // The other keeps answering badly: it stays, the last server up.
    let bad = statuses(&mut c, "/status/500", 20).await;
    assert!(
        bad.iter().all(|s| *s == StatusCode::INTERNAL_SERVER_ERROR),
        "{bad:?}"
    );
    let good = statuses(&mut c, "/", 10).await;
    assert!(good.iter().all(|s| *s == StatusCode::OK), "{good:?}");
    let serving = ["a", "b"]
        .iter()
        .filter(|s| {
            run.registry
                .health(&halo_health::ServerKey::new("p", s))
                .unwrap()
                .is_serving()
        })
        .count();
    assert_eq!(serving, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_is_never_emptied_by_passive_evidence() {
    let (a, _ta) = backend("a").await;
    let passive = "[pool.passive]\nobserve = \"layer7\"\nerror_limit = 1\n";
    let run = Running::start(&default_pool_p(passive, &[("a", a, "")])).await;
    let mut c = Client::connect(run.addr()).await;
    let bad = statuses(&mut c, "/status/503", 20).await;
    assert!(
        bad.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{bad:?}"
    );
    let good = statuses(&mut c, "/", 10).await;
    assert!(good.iter().all(|s| *s == StatusCode::OK), "{good:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_evidence_never_takes_the_last_server_serving() {
    // a is in maintenance (UP by health, but serving nothing): b is the
    // pool's last server serving, and bad answers do not eject it.
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let passive = "[pool.passive]\nobserve = \"layer7\"\nerror_limit = 1\n";
    let run = Running::start(&default_pool_p(passive, &[("a", a, ""), ("b", b, "")])).await;
    let health = |s| {
        run.registry
            .health(&halo_health::ServerKey::new("p", s))
            .unwrap()
    };
    health("a").set_admin(halo_health::AdminState::Maint);
    let mut c = Client::connect(run.addr()).await;
    let bad = statuses(&mut c, "/status/500", 20).await;
    assert!(
        bad.iter().all(|s| *s == StatusCode::INTERNAL_SERVER_ERROR),
        "{bad:?}"
    );
    let good = statuses(&mut c, "/", 10).await;
    assert!(good.iter().all(|s| *s == StatusCode::OK), "{good:?}");
    assert!(health("b").is_serving());
}
