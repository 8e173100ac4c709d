//! TLS termination for `https` listeners: certificates chosen by SNI (exact,
//! then `*.suffix`, then the default), the rustls server config, and what
//! survives a reload (session cache and ticket keys, so clients resume
//! across reloads and certificate changes).
//!
//! Certificates are read from PEM files: a chain whose first certificate is
//! the leaf, and a key in PKCS#8, PKCS#1 or SEC1 form. A chain whose key
//! does not match, an unreadable file or a chain without a DNS name (and no
//! `names`) is an error naming where the certificate is configured; the
//! certificates already serving stay.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use halo_config::{Certificate, Diagnostic, ListenerTls, TlsVersion};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;

/// Sessions kept for TLS 1.2 resumption by ID, per listener (HAProxy's
/// `tune.ssl.cachesize` default).
const SESSION_CACHE: usize = 20_000;

/// The certificates of one listener, by name.
#[derive(Debug)]
pub(crate) struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`: `*.apps.example.com` under `apps.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    /// What each certificate serves, for the log.
    pub(crate) summary: Vec<String>,
}

impl CertStore {
    /// The certificate for `sni`: exact name, then a wildcard one label
    /// deep (as RFC 6125 matches), then the default.
    fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = sni else {
            return &self.default;
        };
        // rustls hands the name over lower-cased; a copy only if not.
        let name = name.trim_end_matches('.');
        let name: std::borrow::Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            name.to_ascii_lowercase().into()
        } else {
            name.into()
        };
        if let Some(c) = self.exact.get(&*name) {
            return c;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

/// When a file last changed, to notice a new certificate on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    // Follows symlinks: a Kubernetes secret volume swaps a link.
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// What `halo check` asks: whether every certificate reads, parses and
/// matches its key; Ok lists what each serves.
///
/// # Errors
/// One diagnostic per certificate that cannot serve, where it is configured.
pub fn check(certs: &[Certificate]) -> Result<Vec<String>, Vec<Diagnostic>> {
    if certs.is_empty() {
        return Ok(Vec::new());
    }
    load(certs).map(|s| s.summary)
}

/// Reads and checks every certificate of a listener. Errors name where each
/// bad one is configured.
pub(crate) fn load(certs: &[Certificate]) -> Result<CertStore, Vec<Diagnostic>> {
    let provider = provider();
    let mut errors = Vec::new();
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    let mut first = None;
    let mut summary = Vec::new();
    for c in certs {
        let (key, names) = match load_one(c, &provider) {
            Ok(k) => k,
            Err((message, hint)) => {
                errors.push(c.origin.diagnostic(message, hint));
                continue;
            }
        };
        summary.push(format!(
            "{} for {}{}",
            c.cert.display(),
            names.join(" "),
            if c.default { " (default)" } else { "" }
        ));
        let key = Arc::new(key);
        for n in names {
            // The first certificate to claim a name keeps it, as HAProxy's
            // crt-list does.
            match n.strip_prefix("*.") {
                Some(parent) => {
                    wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| Arc::clone(&key));
                }
                None => {
                    exact.entry(n).or_insert_with(|| Arc::clone(&key));
                }
            }
        }
        if c.default {
            default = Some(Arc::clone(&key));
        }
        first.get_or_insert(key);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(default) = default.or(first) else {
        return Err(Vec::new());
    };
    Ok(CertStore {
        exact,
        wildcard,
        default,
        summary,
    })
}

type Problem = (String, Option<String>);

fn load_one(
    c: &Certificate,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Vec<String>), Problem> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).map_err(|e| {
            (
                format!("cannot read {what} file {}: {e}", path.display()),
                Some("check the path (relative paths start at the config file's folder) and its permissions".to_owned()),
            )
        })
    };
    let cert_pem = read(&c.cert, "certificate")?;
    let key_pem = read(&c.key, "key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            (
                format!("{}: not a PEM certificate chain: {e}", c.cert.display()),
                None,
            )
        })?;
    if chain.is_empty() {
        return Err((
            format!("{}: no certificate in it", c.cert.display()),
            Some(
                "the file should hold -----BEGIN CERTIFICATE----- blocks, the server's first"
                    .to_owned(),
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        (
            format!("{}: no private key in it: {e}", c.key.display()),
            Some("the file should hold a -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY) block".to_owned()),
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        (
            format!(
                "{} and {} do not make a usable pair: {e}",
                c.cert.display(),
                c.key.display()
            ),
            Some("the key must be the one the first certificate was issued for".to_owned()),
        )
    })?;
    let names = match &c.names {
        Some(n) => n.clone(),
        None => {
            let leaf = webpki::EndEntityCert::try_from(&certified.cert[0]).map_err(|e| {
                (
                    format!("{}: cannot parse the certificate: {e:?}", c.cert.display()),
                    None,
                )
            })?;
            let names: Vec<String> = leaf
                .valid_dns_names()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect();
            if names.is_empty() {
                return Err((
                    format!(
                        "{}: the certificate names no DNS host (subjectAltName)",
                        c.cert.display()
                    ),
                    Some(
                        "add names = [\"app.example.com\"] to say which SNI names it serves"
                            .to_owned(),
                    ),
                ));
            }
            names
        }
    };
    Ok((certified, names))
}

/// The crypto: aws-lc-rs, rustls's default.
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The certificates a handshake picks from; a reload or a changed file
/// swaps them while connections go on.
#[derive(Debug)]
pub(crate) struct Resolver {
    store: ArcSwap<CertStore>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.store.load().pick(hello.server_name())))
    }
}

/// One `https` listener's TLS, kept across reloads while the listener is.
#[derive(Debug)]
pub(crate) struct Terminator {
    resolver: Arc<Resolver>,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
    /// What the file watch needs, changed together.
    watch: std::sync::Mutex<Watch>,
}

/// The certificates' files as last loaded, and when to look at them again.
#[derive(Debug)]
struct Watch {
    certificates: Vec<Certificate>,
    /// Each file and how it was when last read.
    files: Vec<(PathBuf, Option<Stamp>)>,
    /// `watch_interval`; zero: only on reload.
    interval: std::time::Duration,
    next: tokio::time::Instant,
}

impl Watch {
    fn new(tls: &ListenerTls, files: Vec<(PathBuf, Option<Stamp>)>) -> Self {
        Self {
            certificates: tls.certificates.clone(),
            files,
            interval: tls.watch_interval,
            next: tokio::time::Instant::now() + tls.watch_interval,
        }
    }
}

impl Terminator {
    /// # Errors
    /// As [`load`].
    pub(crate) fn new(tls: &ListenerTls) -> Result<Self, Vec<Diagnostic>> {
        // Stamped before reading: a change while loading is seen next time.
        let files = files_of(&tls.certificates);
        let store = load(&tls.certificates)?;
        let tickets = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| {
            vec![Diagnostic {
                file: PathBuf::new(),
                line: 0,
                col: 0,
                message: format!("cannot make TLS session ticket keys: {e}"),
                hint: None,
            }]
        })?;
        Ok(Self {
            resolver: Arc::new(Resolver {
                store: ArcSwap::from_pointee(store),
            }),
            sessions: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE),
            tickets,
            watch: std::sync::Mutex::new(Watch::new(tls, files)),
        })
    }

    /// Whether the files are due a look now (and when the next one is).
    pub(crate) fn due(&self, now: tokio::time::Instant) -> bool {
        let mut w = self.watch();
        if w.interval.is_zero() || now < w.next {
            return false;
        }
        w.next = now + w.interval;
        true
    }

    fn watch(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// New certificates, already loaded (a reload checked them first), and
    /// their files' stamps from before they were read.
    pub(crate) fn replace(&self, loaded: Loaded, tls: &ListenerTls) {
        let Loaded { store, files } = loaded;
        self.resolver.store.store(Arc::new(store));
        *self.watch() = Watch::new(tls, files);
    }

    /// What each certificate serves now, for the log.
    pub(crate) fn summary(&self) -> Vec<String> {
        self.resolver.store.load().summary.clone()
    }

    /// A server config for `tls`, sharing this listener's certificates,
    /// session cache and ticket keys.
    pub(crate) fn config(&self, tls: &ListenerTls) -> Arc<rustls::ServerConfig> {
        let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(versions)
            // The provider's defaults are sound; not reachable.
            .unwrap_or_else(|_| {
                rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
                    .with_safe_default_protocol_versions()
                    .expect("the default provider supports its default versions")
            });
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&self.resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config.session_storage = Arc::clone(&self.sessions);
        config.ticketer = Arc::clone(&self.tickets);
        // HAProxy sends a few tickets too; one is enough for a client that
        // reconnects once, rustls's default (2) covers a parallel pair.
        Arc::new(config)
    }

    /// Reloads the certificates if a file changed on disk since the last
    /// load. `Some(Ok(summary))` when they were swapped, `Some(Err)` when the
    /// new files do not serve (the old certificates stay), `None` when
    /// nothing changed.
    pub(crate) fn reload_if_changed(&self) -> Option<Result<Vec<String>, Vec<Diagnostic>>> {
        let certificates = {
            let mut w = self.watch();
            let mut changed = false;
            for (path, seen) in &mut w.files {
                let now = stamp(path);
                if now != *seen {
                    *seen = now;
                    changed = true;
                }
            }
            if !changed {
                return None;
            }
            w.certificates.clone()
        };
        Some(load(&certificates).map(|store| {
            let summary = store.summary.clone();
            self.resolver.store.store(Arc::new(store));
            summary
        }))
    }
}

/// Certificates read for a reload, not serving yet.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) store: CertStore,
    files: Vec<(PathBuf, Option<Stamp>)>,
}

/// Reads `certs` for a reload.
///
/// # Errors
/// As [`load`].
pub(crate) fn prepare(certs: &[Certificate]) -> Result<Loaded, Vec<Diagnostic>> {
    let files = files_of(certs);
    Ok(Loaded {
        store: load(certs)?,
        files,
    })
}

fn files_of(certs: &[Certificate]) -> Vec<(PathBuf, Option<Stamp>)> {
    certs
        .iter()
        .flat_map(|c| [c.cert.clone(), c.key.clone()])
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}
