//! TLS through real sockets: an `https` listener terminating with
//! certificates chosen by SNI, asked by `openssl s_client` and curl (Debian's,
//! OpenSSL 3), and a `tls-passthrough` listener routing by SNI to TLS
//! backends whose own certificates reach the client. Certificates are made
//! per test by the `openssl` command (a CA, then leaves it signs).
//!
//! Needs openssl and curl (scripts/test installs them). Outside CI a missing
//! one skips the test and says so; in CI it fails.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::Running;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(20);

fn tools() -> bool {
    common::have("/usr/bin/openssl", "openssl") && common::have("/usr/bin/curl", "curl")
}

/// A folder with a CA and leaf certificates it signed.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("halo-tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=halo test CA",
            "-days",
            "2",
        ]);
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A leaf `name` (its CN) for `dns` names, signed by the CA: name.pem
    /// (leaf then CA) and name.key.
    fn leaf(&self, name: &str, dns: &[&str]) -> (PathBuf, PathBuf) {
        let san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        std::fs::write(
            self.dir.join(format!("{name}.ext")),
            format!("subjectAltName={}\n", san.join(",")),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.leaf"),
        ]);
        let chain = [
            std::fs::read(self.dir.join(format!("{name}.leaf"))).unwrap(),
            std::fs::read(self.dir.join("ca.pem")).unwrap(),
        ]
        .concat();
        let pem = self.dir.join(format!("{name}.pem"));
        std::fs::write(&pem, chain).unwrap();
        (pem, self.dir.join(format!("{name}.key")))
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A rustls client trusting the CA, offering `alpn`.
    fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.ca()).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A rustls server config with the leaf `name`; with `client_ca`, it
    /// requires a client certificate signed by the CA.
    fn server(&self, name: &str) -> Arc<rustls::ServerConfig> {
        self.server_with(name, false)
    }

    fn server_with(&self, name: &str, client_ca: bool) -> Arc<rustls::ServerConfig> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.join(format!("{name}.pem")))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
        let builder = rustls::ServerConfig::builder();
        let builder = if client_ca {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(self.ca()).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP/1.1 backend that answers every request with its name and the
/// request's headers, and echoes bytes after an Upgrade.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(http_conn(s, name, 0));
        }
    });
    addr
}

/// The same over TLS with the leaf `cert`; with `client_ca`, a client
/// certificate signed by the test CA is required.
async fn tls_http_backend(
    pki: &Pki,
    cert: &str,
    name: &'static str,
    client_ca: bool,
) -> SocketAddr {
    // Each connection's answers name it (`conn N`), to tell reuse apart.
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tls_server(pki.server_with(cert, client_ca), move |tls| {
        let n = conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        http_conn(tls, name, n)
    })
    .await
}

/// Accepts TLS on 127.0.0.1:0 with `config`; each connection, once its
/// handshake is done, goes to `handle`.
async fn tls_server<F, Fut>(config: Arc<rustls::ServerConfig>, handle: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (acceptor, handle) = (acceptor.clone(), Arc::clone(&handle));
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    handle(tls).await;
                }
            });
        }
    });
    addr
}

/// Answers HTTP/1.1 requests on `s` (keep-alive) with `name`, the
/// connection's number, the head it got and the body (by content-length);
/// a WebSocket upgrade becomes an echo.
async fn http_conn<S>(mut s: S, name: &'static str, conn: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let Ok(n @ 1..) = s.read(&mut chunk).await else {
            return;
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            buf.drain(..end + 4);
            if head.contains("upgrade: websocket") {
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                    .await;
                let (mut r, mut w) = tokio::io::split(s);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                return;
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < length {
                let mut chunk = [0u8; 4096];
                let Ok(n @ 1..) = s.read(&mut chunk).await else {
                    return;
                };
                buf.extend_from_slice(&chunk[..n]);
            }
            let got: Vec<u8> = buf.drain(..length).collect();
            let body = format!(
                "{name}\nconn {conn}\nbody {}\n{head}\n",
                String::from_utf8_lossy(&got)
            );
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

fn pool(name: &str, addr: SocketAddr) -> String {
    format!(
        "[[pool]]\nname = \"{name}\"\n[[pool.server]]\nname = \"{name}-1\"\naddress = \"{addr}\"\n"
    )
}

/// `openssl s_client` to `at` with `args`; its whole output.
fn s_client(at: SocketAddr, args: &[&str]) -> String {
    s_client_sending(at, args, b"")
}

/// The same, sending `input` once connected.
fn s_client_sending(at: SocketAddr, args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &at.to_string()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The CN of the certificate the server sent (s_client's "subject=").
fn served_cn(at: SocketAddr, args: &[&str]) -> String {
    let out = s_client(at, args);
    out.lines()
        .find_map(|l| {
            l.strip_prefix("subject=CN = ")
                .or_else(|| l.strip_prefix("subject=CN="))
        })
        .unwrap_or_else(|| panic!("no subject in: {out}"))
        .trim()
        .to_owned()
}

fn curl(ca: &Path, at: SocketAddr, host: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{}:127.0.0.1", at.port())])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://{host}:{}/", at.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (
        body.to_owned(),
        format!("{status}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_chooses_certificates_by_sni_and_serves_h1_h2_and_upgrades() {
    if !tools() {
        return;
    }
    let pki = Pki::new("sni");
    let (a_cert, a_key) = pki.leaf("cert-a", &["a.example.test"]);
    let (w_cert, w_key) = pki.leaf("cert-w", &["*.w.example.test"]);
    let (d_cert, d_key) = pki.leaf("cert-d", &["default.example.test"]);
    let (pa, pd) = (backend("pool-a").await, backend("pool-d").await);
    let config = format!(
        "[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"https\"\ndefault_pool = \"pd\"\n\
         [[listener.route]]\nhost = \"a.example.test\"\npool = \"pa\"\n\
         [[listener.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[listener.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[listener.certificate]]\ncert = \"{}\"\nkey = \"{}\"\ndefault = true\n{}{}",
        a_cert.display(),
        a_key.display(),
        w_cert.display(),
        w_key.display(),
        d_cert.display(),
        d_key.display(),
        pool("pa", pa),
        pool("pd", pd),
    );
    let run = Running::start(&config).await;
    let at = run.addr();
    let ca = pki.ca();
    let blocking = |f: Box<dyn FnOnce() -> String + Send>| tokio::task::spawn_blocking(f);

    // Each SNI case: exact, wildcard, the wildcard's own apex (not covered:
    // default), unknown (default), none (default).
    for (sni, cn) in [
        (Some("a.example.test"), "cert-a"),
        (Some("A.Example.Test"), "cert-a"),
        (Some("x.w.example.test"), "cert-w"),
        (Some("w.example.test"), "cert-d"),
        (Some("other.example.test"), "cert-d"),
        (None, "cert-d"),
    ] {
        let got = blocking(Box::new(move || match sni {
            Some(s) => served_cn(at, &["-servername", s]),
            None => served_cn(at, &["-noservername"]),
        }))
        .await
        .unwrap();
        assert_eq!(got, cn, "SNI {sni:?}");
    }

    // curl verifies the chain against the CA: HTTP/1.1 and HTTP/2 by ALPN,
    // routed by Host, X-Forwarded-Proto https.
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let ca = ca.clone();
        let (body, status) = blocking(Box::new(move || {
            let (b, s) = curl(&ca, at, "a.example.test", &[flag]);
            format!("{b}\u{0}{s}")
        }))
        .await
        .unwrap()
        .split_once('\u{0}')
        .map(|(b, s)| (b.to_owned(), s.to_owned()))
        .unwrap();
        assert_eq!(status, format!("200 {version}"), "{flag}: {body}");
        assert!(body.starts_with("pool-a\n"), "{body}");
        assert!(body.contains("x-forwarded-proto: https"), "{body}");
        assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
    }
    let ca2 = ca.clone();
    let other = blocking(Box::new(move || {
        curl(&ca2, at, "default.example.test", &[]).0
    }))
    .await
    .unwrap();
    assert!(other.starts_with("pool-d\n"), "{other}");

    // TLS 1.2 and 1.3 both; each resumes a session.
    for version in ["-tls1_2", "-tls1_3"] {
        let sess = pki.dir.join(format!("sess{version}"));
        let sess = sess.to_str().unwrap().to_owned();
        let (first, again) = blocking(Box::new(move || {
            // TLS 1.3 tickets come after the handshake: s_client must stay
            // until the server has answered a request (HTTP/1.0: then it
            // closes) to have one to save.
            let first = s_client_sending(
                at,
                &[
                    version,
                    "-servername",
                    "a.example.test",
                    "-sess_out",
                    &sess,
                    "-ign_eof",
                ],
                b"GET / HTTP/1.0\r\nhost: a.example.test\r\n\r\n",
            );
            let again = s_client(
                at,
                &[version, "-servername", "a.example.test", "-sess_in", &sess],
            );
            format!("{first}\u{0}{again}")
        }))
        .await
        .unwrap()
        .split_once('\u{0}')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
        assert!(first.contains("New, TLSv1."), "{version}: {first}");
        assert!(
            again.contains("Reused, TLSv1."),
            "{version} not resumed: {again}"
        );
    }

    // A WebSocket-style upgrade over TLS: 101, then bytes both ways.
    let connector = pki.client(&[b"http/1.1"]);
    let tcp = TcpStream::connect(at).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("a.example.test").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /ws HTTP/1.1\r\nhost: a.example.test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    timeout(DEADLINE, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(tls.read(&mut b).await.unwrap(), 1, "closed: {head:?}");
            head.push(b[0]);
        }
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tls.write_all(b"ping over tls").await.unwrap();
    let mut echo = [0u8; 13];
    timeout(DEADLINE, tls.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_1_3_refuses_tls_1_2() {
    if !tools() {
        return;
    }
    let pki = Pki::new("v13");
    let (c, k) = pki.leaf("only", &["only.example.test"]);
    let pd = backend("pd").await;
    let config = format!(
        "[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"https\"\ndefault_pool = \"pd\"\n\
         [listener.tls]\nmin_version = \"1.3\"\nalpn = [\"http/1.1\"]\n\
         [[listener.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n{}",
        c.display(),
        k.display(),
        pool("pd", pd)
    );
    let run = Running::start(&config).await;
    let at = run.addr();
    let (v12, v13) = tokio::task::spawn_blocking(move || {
        (
            s_client(at, &["-tls1_2", "-servername", "only.example.test"]),
            s_client(at, &["-tls1_3", "-servername", "only.example.test"]),
        )
    })
    .await
    .unwrap();
    assert!(!v12.contains("New, TLSv1.2"), "TLS 1.2 was accepted: {v12}");
    assert!(v13.contains("New, TLSv1.3"), "{v13}");
    // ALPN offers http/1.1 only: curl --http2 falls back.
    let (_, status) =
        tokio::task::spawn_blocking(move || curl(&pki.ca(), at, "only.example.test", &["--http2"]))
            .await
            .unwrap();
    assert_eq!(status, "200 1.1");
}

/// A TLS backend: after the handshake it writes its name, then echoes.
async fn tls_backend(pki: &Pki, cert: &str, name: &'static str) -> SocketAddr {
    tls_server(pki.server(cert), move |mut tls| async move {
        let _ = tls.write_all(format!("{name}\n").as_bytes()).await;
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = tls.read(&mut buf).await {
            if tls.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_routes_by_sni_and_forwards_the_servers_certificate() {
    if !tools() {
        return;
    }
    let pki = Pki::new("pass");
    pki.leaf("back-a", &["a.example.test"]);
    pki.leaf("back-w", &["*.w.example.test"]);
    pki.leaf("back-d", &["default.example.test"]);
    let a = tls_backend(&pki, "back-a", "backend-a").await;
    let w = tls_backend(&pki, "back-w", "backend-w").await;
    let d = tls_backend(&pki, "back-d", "backend-d").await;
    let config = |default: bool| {
        format!(
            "[[listener]]\nname = \"pass\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tls-passthrough\"\n{}\
             [listener.tls]\nhandshake_timeout = \"300ms\"\n\
             [[listener.route]]\nhost = \"a.example.test\"\npool = \"pa\"\n\
             [[listener.route]]\nhost = \"*.w.example.test\"\npool = \"pw\"\n{}{}{}",
            if default {
                "default_pool = \"pd\"\n"
            } else {
                ""
            },
            pool("pa", a),
            pool("pw", w),
            pool("pd", d)
        )
    };
    let run = Running::start(&config(true)).await;
    let at = run.addr();
    let connector = pki.client(&[]);
    // The client verifies the backend's own certificate for the name: the
    // bytes went through untouched.
    let talk = |sni: &'static str| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(at).await.unwrap();
            let mut tls = connector
                .connect(ServerName::try_from(sni).unwrap(), tcp)
                .await
                .unwrap_or_else(|e| panic!("{sni}: {e}"));
            let mut line = vec![0u8; 10];
            timeout(DEADLINE, tls.read_exact(&mut line))
                .await
                .unwrap()
                .unwrap();
            tls.write_all(b"hello").await.unwrap();
            let mut echo = [0u8; 5];
            timeout(DEADLINE, tls.read_exact(&mut echo))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&echo, b"hello");
            String::from_utf8(line).unwrap()
        }
    };
    assert_eq!(talk("a.example.test").await, "backend-a\n");
    assert_eq!(talk("x.w.example.test").await, "backend-w\n");
    assert_eq!(talk("default.example.test").await, "backend-d\n");
    // openssl s_client sees the backend's certificate; no SNI goes to the
    // default pool.
    let (cn_a, cn_none) = tokio::task::spawn_blocking(move || {
        (
            served_cn(at, &["-servername", "a.example.test"]),
            served_cn(at, &["-noservername"]),
        )
    })
    .await
    .unwrap();
    assert_eq!((cn_a.as_str(), cn_none.as_str()), ("back-a", "back-d"));

    // Plain HTTP, and silence past handshake_timeout: closed.
    let mut plain = TcpStream::connect(at).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, plain.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{rest:?}");
    let mut silent = TcpStream::connect(at).await.unwrap();
    let n = timeout(DEADLINE, silent.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "closed after the handshake timeout"
    );

    // Without a default pool, an unknown name is closed.
    let run2 = Running::start(&config(false)).await;
    let at2 = run2.addr();
    let tcp = TcpStream::connect(at2).await.unwrap();
    let refused = connector
        .connect(ServerName::try_from("nobody.example.test").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "an unknown SNI was forwarded");
}

/// examples/openshift-router.toml as written, on loopback: one port serves a
/// passthrough route (the pod's own certificate reaches the client) and edge
/// routes (terminated by the loopback https listener, reached with a PROXY
/// v2 header, certificate by SNI, routed by Host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_openshift_router_serves_passthrough_and_edge_routes_on_one_port() {
    if !tools() {
        return;
    }
    let pki = Pki::new("router");
    pki.leaf("secure-db", &["secure-db.apps.os.example.com"]);
    let db = tls_backend(&pki, "secure-db", "secure-db").await;
    let (apps, grafana) = (backend("apps").await, backend("grafana").await);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/openshift-router.toml");
    let written = std::fs::read_to_string(&path).unwrap();
    let text = |edge: &str| {
        let mut t = written.clone();
        for (from, to) in [
            ("\"0.0.0.0:443\"", "\"127.0.0.1:0\"".to_owned()),
            ("\"0.0.0.0:80\"", "\"127.0.0.1:0\"".to_owned()),
            (
                "bind = [\"127.0.0.1:10443\"]",
                "bind = [\"127.0.0.1:0\"]".to_owned(),
            ),
            (
                "address = \"127.0.0.1:10443\"",
                format!("address = \"{edge}\""),
            ),
            ("192.0.2.3:8443", db.to_string()),
            ("192.0.2.4:8443", db.to_string()),
            ("192.0.2.3:8080", apps.to_string()),
            ("192.0.2.4:8080", apps.to_string()),
            ("192.0.2.3:3000", grafana.to_string()),
        ] {
            assert!(t.contains(from), "{from}");
            t = t.replace(from, &to);
        }
        t
    };
    // The edge listener binds port 0, so the pool that reaches it learns
    // its port by a reload (a pool change: the sockets stay).
    let mut run = Running::start_as(&path, &text("127.0.0.1:9")).await;
    let bound = run.proxy.bound();
    let port = |name: &str| bound.iter().find(|(n, _)| n == name).unwrap().1;
    let (https, edge) = (port("router-https"), port("router-edge"));
    let config = halo_config::parse(&path, &text(&edge.to_string())).unwrap();
    run.registry.apply(&config);
    run.proxy.reload(&config, &run.registry).unwrap();

    // Passthrough: the client verifies the pod's own certificate.
    let tcp = TcpStream::connect(https).await.unwrap();
    let mut tls = pki
        .client(&[])
        .connect(
            ServerName::try_from("secure-db.apps.os.example.com").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut line = vec![0u8; 10];
    timeout(DEADLINE, tls.read_exact(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, b"secure-db\n");

    // Edge: the router's certificates (grafana's own, the wildcard for the
    // rest and for no SNI), routed by Host behind the terminator.
    let cns = tokio::task::spawn_blocking(move || {
        [
            served_cn(https, &["-servername", "grafana.apps.os.example.com"]),
            served_cn(https, &["-servername", "shop.apps.os.example.com"]),
            served_cn(https, &["-noservername"]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        cns,
        [
            "grafana.apps.os.example.com",
            "*.apps.os.example.com",
            "*.apps.os.example.com"
        ]
    );
    let bodies = tokio::task::spawn_blocking(move || {
        ["grafana.apps.os.example.com", "shop.apps.os.example.com"].map(|host| {
            let out = Command::new("curl")
                .args(["-sS", "-k", "--max-time", "10", "--resolve"])
                .arg(format!("{host}:{}:127.0.0.1", https.port()))
                .arg(format!("https://{host}:{}/", https.port()))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    })
    .await
    .unwrap();
    assert!(bodies[0].starts_with("grafana\n"), "{}", bodies[0]);
    assert!(bodies[1].starts_with("apps\n"), "{}", bodies[1]);
    // The client's address crossed the loopback hop in the PROXY header.
    assert!(
        bodies[1].contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        bodies[1]
    );
    assert!(
        bodies[1].contains("x-forwarded-proto: https"),
        "{}",
        bodies[1]
    );
}

/// `[pool.tls]`: HTTP and TCP traffic re-encrypted to servers that are
/// verified against a CA and a name, health checks over TLS, a client
/// certificate for a server that requires one; a server whose certificate
/// is not for the name is marked down by its check and gets no traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_tls_reencrypts_verifies_and_checks_over_tls() {
    if !tools() {
        return;
    }
    let pki = Pki::new("pooltls");
    pki.leaf("api", &["api.internal.test"]);
    let (client_cert, client_key) = pki.leaf("halo-client", &["halo.internal.test"]);
    let api = tls_http_backend(&pki, "api", "api-over-tls", false).await;
    let mtls = tls_http_backend(&pki, "api", "api-mtls", true).await;
    let echo = tls_backend(&pki, "api", "echo-tls").await;
    let ca = pki.ca();
    let tls = |extra: &str| {
        format!(
            "[pool.tls]\nca_file = \"{}\"\nsni = \"api.internal.test\"\n{extra}",
            ca.display()
        )
    };
    let check = "[pool.check]\ntype = \"http\"\npath = \"/healthz\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n";
    let config = format!(
        "[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"http\"\ndefault_pool = \"api\"\n\
         [[listener.route]]\nhost = \"mtls.test\"\npool = \"mtls\"\n\
         [[listener.route]]\nhost = \"wrong.test\"\npool = \"wrong\"\n\
         [[listener]]\nname = \"raw\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"echo\"\n\
         [[pool]]\nname = \"api\"\n{}{check}[[pool.server]]\nname = \"a\"\naddress = \"{api}\"\n\
         [[pool]]\nname = \"mtls\"\n{}[[pool.server]]\nname = \"m\"\naddress = \"{mtls}\"\n\
         [[pool]]\nname = \"wrong\"\n[pool.tls]\nca_file = \"{}\"\nsni = \"other.internal.test\"\n{check}[[pool.server]]\nname = \"w\"\naddress = \"{api}\"\n\
         [[pool]]\nname = \"echo\"\n{}[[pool.server]]\nname = \"e\"\naddress = \"{echo}\"\n",
        tls(""),
        tls(&format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            client_cert.display(),
            client_key.display()
        )),
        ca.display(),
        tls(""),
    );
    let run = Running::start(&config).await;
    let bound = run.proxy.bound();
    let (web, raw_at) = (bound[0].1, bound[1].1);
    // One request on a new connection; the whole answer.
    let ask = |request: String| async move {
        let mut s = TcpStream::connect(web).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        timeout(DEADLINE, s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let get = |host: &str| {
        ask(format!(
            "GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        ))
    };
    // Re-encrypted, twice on the same pooled server connection: two
    // requests on one client connection, so one proxy thread serves both
    // (idle server connections are pooled per thread: two client
    // connections may land on two threads) and the second is read after
    // the first's response ended, when its server connection is idle again.
    let answer = ask(
        "GET / HTTP/1.1\r\nhost: api.test\r\n\r\nGET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert_eq!(answer.matches("api-over-tls\n").count(), 2, "{answer}");
    let conns: Vec<&str> = answer.lines().filter(|l| l.starts_with("conn ")).collect();
    assert_eq!(conns.len(), 2, "{answer}");
    assert_eq!(conns[0], conns[1], "the idle TLS connection is reused");
    // A request body goes to the server over TLS (the body writer's path).
    let answer = ask(
        "POST /upload HTTP/1.1\r\nhost: api.test\r\ncontent-length: 11\r\nconnection: close\r\n\r\nhello world".into(),
    )
    .await;
    assert!(answer.contains("body hello world\n"), "{answer}");
    // An upgrade tunnels through the server's TLS stream.
    let mut s = TcpStream::connect(web).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nhost: api.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        timeout(DEADLINE, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(b"ping over two TLS hops").await.unwrap();
    let mut back = [0u8; 22];
    timeout(DEADLINE, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"ping over two TLS hops");
    // Mutual TLS: the server asks for, and gets, halo's client certificate.
    let answer = get("mtls.test").await;
    assert!(answer.contains("api-mtls\n"), "{answer}");
    // The wrong name: the check fails the handshake and marks it down;
    // requests get 503 (none was sent in clear).
    run.wait_down("wrong", "w").await;
    let answer = get("wrong.test").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // TCP mode over TLS to the server.
    let mut s = TcpStream::connect(raw_at).await.unwrap();
    let mut line = vec![0u8; 9];
    timeout(DEADLINE, s.read_exact(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, b"echo-tls\n");
    s.write_all(b"through").await.unwrap();
    let mut echo_back = [0u8; 7];
    timeout(DEADLINE, s.read_exact(&mut echo_back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo_back, b"through");
}
