//! `GET /metrics`: the [`Status`] in Prometheus text format (prometheus-client),
//! built afresh for each scrape from the same snapshot as `/api/status`, so
//! the two never disagree. Metric names are the constants below, documented
//! in docs/metrics.md; counters get `_total` from the encoder.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::status::{Counters, Status};

/// Metric names (without the `_total` counters get).
pub mod names {
    /// Gauge 1 with labels node, site, version.
    pub const INFO: &str = "halo_info";
    /// Counter: requests (HTTP) or connections (TCP), by listener.
    pub const LISTENER_REQUESTS: &str = "halo_listener_requests";
    /// Gauge: open client connections, by listener.
    pub const LISTENER_ACTIVE: &str = "halo_listener_active_connections";
    /// Counter: responses by listener and class (1xx..5xx).
    pub const LISTENER_RESPONSES: &str = "halo_listener_responses";
    /// Counter: failed accepts (out of descriptors, most often), by listener.
    pub const LISTENER_ACCEPT_ERRORS: &str = "halo_listener_accept_errors";
    /// Counter: connects to a server that failed on this host's own limits
    /// (descriptors, memory, local ports), by pool and server; not in
    /// `halo_server_errors` and not held against the server's health.
    pub const SERVER_LOCAL_ERRORS: &str = "halo_server_local_errors";
    /// Counter: requests by pool and server.
    pub const SERVER_REQUESTS: &str = "halo_server_requests";
    /// Counter: responses by pool, server and class.
    pub const SERVER_RESPONSES: &str = "halo_server_responses";
    /// Counter: errors (connect, reset, timeout) by pool and server.
    pub const SERVER_ERRORS: &str = "halo_server_errors";
    /// Counter: retries away from a server, by pool and server.
    pub const SERVER_RETRIES: &str = "halo_server_retries";
    /// Gauge: connections open to a server.
    pub const SERVER_ACTIVE: &str = "halo_server_active_connections";
    /// Counter: bytes from clients (`direction="in"`) and to them (`"out"`), by pool and server.
    pub const SERVER_BYTES: &str = "halo_server_bytes";
    /// Gauge: 1 when the server is UP by health, else 0.
    pub const SERVER_UP: &str = "halo_server_up";
    /// Gauge: 1 for the server's admin state (`state` = ready|drain|maint), 0 for the others.
    pub const SERVER_ADMIN: &str = "halo_server_admin_state";
    /// Gauge: 1 for the instance's VRRP state (`state` = INIT|BACKUP|MASTER|FAULT), 0 for the others.
    pub const VRRP_STATE: &str = "halo_vrrp_state";
    /// Gauge: effective VRRP priority.
    pub const VRRP_PRIORITY: &str = "halo_vrrp_priority";
    /// Counter: VRRP packets received, by vip.
    pub const VRRP_RECEIVED: &str = "halo_vrrp_received";
    /// Counter: VRRP advertisements sent, by vip.
    pub const VRRP_SENT: &str = "halo_vrrp_sent";
    /// Counter: VRRP packets dropped, by vip and reason.
    pub const VRRP_DROPPED: &str = "halo_vrrp_dropped";
    /// Counter: VRRP state changes, by vip.
    pub const VRRP_TRANSITIONS: &str = "halo_vrrp_transitions";
    /// Counter: admin connections closed at once (over 64, or 16 per client).
    pub const ADMIN_REFUSED: &str = "halo_admin_connections_refused";
    /// Counter: admin accepts that failed.
    pub const ADMIN_ACCEPT_ERRORS: &str = "halo_admin_accept_errors";
    /// Counter: admin changes refused for a missing or wrong token.
    pub const ADMIN_UNAUTHORIZED: &str = "halo_admin_unauthorized";
    /// Counter: DNS queries answered.
    pub const DNS_QUERIES: &str = "halo_dns_queries";
    /// Counter: DNS TCP accepts that failed.
    pub const DNS_TCP_ACCEPT_ERRORS: &str = "halo_dns_tcp_accept_errors";
    /// Counter: DNS TCP connections closed at once (too many open).
    pub const DNS_TCP_REFUSED: &str = "halo_dns_tcp_refused";
    /// Gauge: 1 when a GSLB peer answered its last query, by peer.
    pub const GSLB_PEER_REACHABLE: &str = "halo_gslb_peer_reachable";
    /// Gauge: 1 when a GSLB endpoint may be answered, by service, address, site.
    pub const GSLB_ENDPOINT_HEALTHY: &str = "halo_gslb_endpoint_healthy";
    /// Gauge: 1 when this node's probe reaches another site's endpoint, 0
    /// when not, by service, address, site (probed services only).
    pub const GSLB_PROBE_UP: &str = "halo_gslb_probe_up";
    /// Gauge: probe votes on another site's endpoint (`vote` = up|down),
    /// this node's and its peers', by service, address, site.
    pub const GSLB_PROBE_VOTES: &str = "halo_gslb_probe_votes";
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const VRRP_STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];
const ADMIN_STATES: [&str; 3] = ["ready", "drain", "maint"];

/// A family registered under `name` and filled by the caller.
struct Families {
    registry: Registry,
}

impl Families {
    fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter> {
        let f = Family::<Labels, Counter>::default();
        self.registry.register(name, help, f.clone());
        f
    }

    /// A counter without labels, at `value`.
    fn single_counter(&mut self, name: &str, help: &str, value: u64) {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        self.registry.register(name, help, c);
    }

    fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, Gauge> {
        let f = Family::<Labels, Gauge>::default();
        self.registry.register(name, help, f.clone());
        f
    }
}

fn set(f: &Family<Labels, Gauge>, l: &Labels, v: u64) {
    f.get_or_create(l).set(i64::try_from(v).unwrap_or(i64::MAX));
}

fn add(f: &Family<Labels, Counter>, l: &Labels, v: u64) {
    f.get_or_create(l).inc_by(v);
}

/// The status as Prometheus text.
#[must_use]
pub fn render(status: &Status) -> String {
    use names::*;
    let mut m = Families {
        registry: Registry::default(),
    };
    let info = m.gauge(INFO, "This node: name, site and halo version");
    set(
        &info,
        &labels(&[
            ("node", &status.node),
            ("site", &status.site),
            ("version", &status.version),
        ]),
        1,
    );

    for (name, help, n) in [
        (
            ADMIN_REFUSED,
            "Admin connections closed at once: too many open",
            status.admin.connections_refused,
        ),
        (
            ADMIN_ACCEPT_ERRORS,
            "Admin accepts that failed",
            status.admin.accept_errors,
        ),
        (
            ADMIN_UNAUTHORIZED,
            "Admin changes refused for a missing or wrong token",
            status.admin.unauthorized,
        ),
    ] {
        m.single_counter(name, help, n);
    }

    let l_req = m.counter(
        LISTENER_REQUESTS,
        "Requests (HTTP) or connections (TCP) by listener",
    );
    let l_act = m.gauge(LISTENER_ACTIVE, "Open client connections by listener");
    let l_resp = m.counter(LISTENER_RESPONSES, "Responses by listener and status class");
    let l_acc = m.counter(
        LISTENER_ACCEPT_ERRORS,
        "Failed accepts (out of file descriptors, most often) by listener",
    );
    for l in &status.listeners {
        let lab = |extra: &[(&str, &str)]| {
            let mut v = labels(&[("listener", &l.name)]);
            v.extend(labels(extra));
            v
        };
        add(&l_req, &lab(&[]), l.counters.requests);
        add(&l_acc, &lab(&[]), l.counters.accept_errors);
        set(&l_act, &lab(&[]), l.counters.active);
        for (class, n) in CLASSES.iter().zip(l.counters.responses) {
            add(&l_resp, &lab(&[("class", class)]), n);
        }
    }

    let s_req = m.counter(SERVER_REQUESTS, "Requests or connections sent to a server");
    let s_resp = m.counter(SERVER_RESPONSES, "Responses from a server by status class");
    let s_err = m.counter(
        SERVER_ERRORS,
        "Connect errors, resets and timeouts by server",
    );
    let s_local = m.counter(
        SERVER_LOCAL_ERRORS,
        "Connects that failed on this host's own limits, not the server's",
    );
    let s_retry = m.counter(SERVER_RETRIES, "Retries away from a server");
    let s_act = m.gauge(SERVER_ACTIVE, "Connections open to a server");
    let s_bytes = m.counter(
        SERVER_BYTES,
        "Bytes through a server, by direction (in = from clients)",
    );
    let s_up = m.gauge(SERVER_UP, "1 when the server is UP by health checks");
    let s_admin = m.gauge(SERVER_ADMIN, "1 for the server's admin state");
    for p in &status.pools {
        for s in &p.servers {
            let lab = |extra: &[(&str, &str)]| {
                let mut v = labels(&[("pool", &p.name), ("server", &s.name)]);
                v.extend(labels(extra));
                v
            };
            let c: &Counters = &s.counters;
            add(&s_req, &lab(&[]), c.requests);
            for (class, n) in CLASSES.iter().zip(c.responses) {
                add(&s_resp, &lab(&[("class", class)]), n);
            }
            add(&s_err, &lab(&[]), c.errors);
            add(&s_local, &lab(&[]), c.local_errors);
            add(&s_retry, &lab(&[]), c.retries);
            set(&s_act, &lab(&[]), c.active);
            add(&s_bytes, &lab(&[("direction", "in")]), c.bytes_in);
            add(&s_bytes, &lab(&[("direction", "out")]), c.bytes_out);
            set(&s_up, &lab(&[]), u64::from(s.health == "up"));
            for a in ADMIN_STATES {
                set(&s_admin, &lab(&[("state", a)]), u64::from(s.admin == a));
            }
        }
    }

    let v_state = m.gauge(VRRP_STATE, "1 for the VRRP instance's state");
    let v_prio = m.gauge(VRRP_PRIORITY, "Effective VRRP priority");
    let v_rx = m.counter(VRRP_RECEIVED, "VRRP packets received");
    let v_tx = m.counter(VRRP_SENT, "VRRP advertisements sent");
    let v_drop = m.counter(VRRP_DROPPED, "VRRP packets dropped, by reason");
    let v_tr = m.counter(VRRP_TRANSITIONS, "VRRP state changes");
    for v in &status.vips {
        let lab = |extra: &[(&str, &str)]| {
            let mut l = labels(&[("vip", &v.name)]);
            l.extend(labels(extra));
            l
        };
        for st in VRRP_STATES {
            set(&v_state, &lab(&[("state", st)]), u64::from(v.state == st));
        }
        set(&v_prio, &lab(&[]), v.priority.into());
        let c = &v.counters;
        add(&v_rx, &lab(&[]), c.received);
        add(&v_tx, &lab(&[]), c.sent);
        for (reason, n) in [
            ("ttl", c.dropped_ttl),
            ("peer", c.dropped_peer),
            ("vrid", c.dropped_vrid),
            ("version", c.dropped_version),
            ("length", c.dropped_length),
            ("checksum", c.dropped_checksum),
            ("other", c.dropped_other),
        ] {
            add(&v_drop, &lab(&[("reason", reason)]), n);
        }
        add(&v_tr, &lab(&[]), c.transitions);
    }

    if let Some(g) = &status.gslb {
        let q = m.counter(DNS_QUERIES, "DNS queries answered (UDP and TCP)");
        add(&q, &labels(&[("zone", &g.zone)]), g.queries);
        let acc = m.counter(DNS_TCP_ACCEPT_ERRORS, "DNS TCP accepts that failed");
        add(&acc, &labels(&[("zone", &g.zone)]), g.tcp_accept_errors);
        let full = m.counter(
            DNS_TCP_REFUSED,
            "DNS TCP connections closed at once: too many open",
        );
        add(&full, &labels(&[("zone", &g.zone)]), g.tcp_refused);
        let reach = m.gauge(
            GSLB_PEER_REACHABLE,
            "1 when the GSLB peer answered its last query",
        );
        for p in &g.peers {
            set(
                &reach,
                &labels(&[("peer", &p.address)]),
                u64::from(p.reachable),
            );
        }
        let healthy = m.gauge(
            GSLB_ENDPOINT_HEALTHY,
            "1 when a GSLB endpoint may be answered",
        );
        for s in &g.services {
            for e in &s.endpoints {
                set(
                    &healthy,
                    &labels(&[
                        ("service", &s.name),
                        ("address", &e.address),
                        ("site", &e.site),
                    ]),
                    u64::from(e.healthy),
                );
            }
        }
        let probe = m.gauge(
            GSLB_PROBE_UP,
            "1 when this node's probe reaches another site's endpoint",
        );
        let votes = m.gauge(GSLB_PROBE_VOTES, "Probe votes on another site's endpoint");
        for s in &g.services {
            for e in &s.endpoints {
                let Some(v) = &e.verdict else { continue };
                let lab = |extra: &[(&str, &str)]| {
                    let mut l = labels(&[
                        ("service", &s.name),
                        ("address", &e.address),
                        ("site", &e.site),
                    ]);
                    l.extend(labels(extra));
                    l
                };
                if let Some(up) = v.probe {
                    set(&probe, &lab(&[]), u64::from(up));
                }
                set(&votes, &lab(&[("vote", "up")]), u64::from(v.votes_up));
                set(&votes, &lab(&[("vote", "down")]), u64::from(v.votes_down));
            }
        }
    }

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &m.registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{PoolStatus, ServerStatus, VipStatus, VrrpCounters};

    #[test]
    fn counters_get_total_and_states_are_one_hot() {
        let st = Status {
            node: "n".into(),
            site: "east".into(),
            version: "0".into(),
            uptime_secs: 1.0,
            config_age_secs: 1.0,
            listeners: vec![],
            pools: vec![PoolStatus {
                name: "p".into(),
                balance: "first".into(),
                servers: vec![ServerStatus {
                    name: "s".into(),
                    address: "192.0.2.1:80".into(),
                    health: "up".into(),
                    admin: "maint".into(),
                    weight: 1,
                    backup: false,
                    counters: Counters {
                        requests: 7,
                        ..Counters::default()
                    },
                }],
                counters: Counters::default(),
            }],
            vips: vec![VipStatus {
                name: "v".into(),
                interface: "eth0".into(),
                vrid: 1,
                addresses: vec![],
                state: "MASTER".into(),
                priority: 90,
                configured_priority: 100,
                owner: false,
                group: None,
                last_transition_secs_ago: None,
                counters: VrrpCounters {
                    dropped_ttl: 3,
                    ..VrrpCounters::default()
                },
            }],
            gslb: None,
            admin: crate::status::AdminCounters {
                unauthorized: 2,
                ..Default::default()
            },
        };
        let text = render(&st);
        for want in [
            "halo_admin_unauthorized_total 2",
            "halo_server_requests_total{pool=\"p\",server=\"s\"} 7",
            "halo_server_admin_state{pool=\"p\",server=\"s\",state=\"maint\"} 1",
            "halo_server_admin_state{pool=\"p\",server=\"s\",state=\"ready\"} 0",
            "halo_vrrp_state{vip=\"v\",state=\"MASTER\"} 1",
            "halo_vrrp_state{vip=\"v\",state=\"BACKUP\"} 0",
            "halo_vrrp_dropped_total{vip=\"v\",reason=\"ttl\"} 3",
            "halo_vrrp_priority{vip=\"v\"} 90",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
    }
}
