//! What the other sites' nodes publish, and for how long to believe it.
//!
//! Each peer is asked for `localtargets-<service>` (A and AAAA) every
//! `peer_interval`; halo-dns does the asking (in parallel, with a timeout and one
//! retry) and reports here. The rule that k8gb lacks: a peer that does not
//! answer is *unreachable*, not *unhealthy*. Its last answer keeps counting
//! until `peer_stale_after` has passed since it last answered; only an answer
//! (even an empty one) changes what the peer's site has. A stale answer is
//! kept too, marked stale: its addresses no longer count as healthy, but they
//! are still known, so `when_all_down = "all"` (fail open) answers them with
//! every other address the node knows.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::verdict::{SiteDns, SiteWord, Votes};

/// Address family of a query and its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

impl Family {
    /// Whether `a` is of this family.
    #[must_use]
    pub fn matches(self, a: IpAddr) -> bool {
        matches!(
            (self, a),
            (Self::V4, IpAddr::V4(_)) | (Self::V6, IpAddr::V6(_))
        )
    }

    fn index(self) -> usize {
        match self {
            Self::V4 => 0,
            Self::V6 => 1,
        }
    }
}

/// The outcome of one peer query (after its retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerResult {
    /// The peer answered: these are its site's healthy endpoints of the family
    /// (empty: none, the site is down for this service). `site` is the site the
    /// peer named in its answer, if it did.
    Answer {
        /// Addresses answered.
        addresses: Vec<IpAddr>,
        /// Site the peer says it is in.
        site: Option<String>,
    },
    /// No usable answer: timeout, refused, SERVFAIL, garbage.
    Unreachable,
}

/// One peer's view of one service and family.
#[derive(Debug, Clone, Default)]
struct Known {
    addresses: Vec<IpAddr>,
    /// When the peer last answered this; None = never.
    answered: Option<Instant>,
    /// Failed since the last answer.
    failing: bool,
    /// Failing for `peer_stale_after` since the last answer: the addresses
    /// are kept but no longer count as healthy.
    stale: bool,
}

/// One peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its DNS address.
    pub address: SocketAddr,
    /// Its site, configured or learned from its answers.
    pub site: Option<String>,
    /// Whether the site came from the config (then answers do not change it).
    configured_site: bool,
    /// Per service, per family.
    known: Vec<[Known; 2]>,
    /// Per service: the peer's own probe verdicts (`probes-<service>`),
    /// while its last answer to that question was an answer.
    probes: Vec<Option<Vec<(IpAddr, bool)>>>,
    /// Whether the last query of any kind failed.
    pub unreachable: bool,
}

/// A peer as seen from here, for status output (issue 6's admin API) and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its DNS address.
    pub address: SocketAddr,
    /// Its site, configured or learned; None until it says.
    pub site: Option<String>,
    /// Whether its last query failed. Its last answers are kept (and counted
    /// in `endpoints`) until they are `peer_stale_after` old.
    pub unreachable: bool,
    /// When it last answered any query; None = never.
    pub last_answer: Option<Instant>,
    /// Addresses it publishes, or published before falling silent, summed
    /// over services and families, while not stale.
    pub endpoints: usize,
    /// Addresses it published before falling silent, now stale (kept for
    /// `when_all_down = "all"`, no longer healthy).
    pub stale_endpoints: usize,
}

/// How many addresses `p` holds that are (not) stale.
fn count(p: &Peer, stale: bool) -> usize {
    p.known
        .iter()
        .flatten()
        .filter(|k| k.stale == stale)
        .map(|k| k.addresses.len())
        .sum()
}

/// Every peer's last word on every service.
#[derive(Debug, Clone)]
pub struct PeerTable {
    peers: Vec<Peer>,
    stale_after: Duration,
}

/// What [`PeerTable::expire`] and [`PeerTable::on_result`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changed {
    /// The set of addresses some service has from peers changed.
    pub endpoints: bool,
}

impl PeerTable {
    /// Peers from the config, none heard from yet, for `services` services.
    #[must_use]
    pub fn new(peers: &[halo_config::Peer], services: usize, stale_after: Duration) -> Self {
        Self {
            peers: peers
                .iter()
                .map(|p| Peer {
                    address: p.address,
                    site: p.site.clone(),
                    configured_site: p.site.is_some(),
                    known: vec![Default::default(); services],
                    probes: vec![None; services],
                    unreachable: false,
                })
                .collect(),
            stale_after,
        }
    }

    /// The peers, in config order.
    #[must_use]
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// Each peer's state, in config order.
    #[must_use]
    pub fn status(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|p| PeerStatus {
                address: p.address,
                site: p.site.clone(),
                unreachable: p.unreachable,
                last_answer: p.known.iter().flatten().filter_map(|k| k.answered).max(),
                endpoints: count(p, false),
                stale_endpoints: count(p, true),
            })
            .collect()
    }

    /// Keeps what is known about peers and services that are still configured
    /// (by address and service name), for a reload.
    pub fn carry_over(&mut self, old: &Self, old_services: &[String], new_services: &[String]) {
        for p in &mut self.peers {
            let Some(o) = old.peers.iter().find(|o| o.address == p.address) else {
                continue;
            };
            if !p.configured_site {
                p.site.clone_from(&o.site);
            }
            p.unreachable = o.unreachable;
            for (i, name) in new_services.iter().enumerate() {
                if let Some(j) = old_services.iter().position(|n| n == name) {
                    p.known[i].clone_from(&o.known[j]);
                    p.probes[i].clone_from(&o.probes[j]);
                }
            }
        }
    }

    /// Records the outcome of asking `peer` about `service`'s `family`.
    pub fn on_result(
        &mut self,
        peer: usize,
        service: usize,
        family: Family,
        result: PeerResult,
        now: Instant,
    ) -> Changed {
        let Some(p) = self.peers.get_mut(peer) else {
            return Changed::default();
        };
        let Some(k) = p.known.get_mut(service).map(|k| &mut k[family.index()]) else {
            return Changed::default();
        };
        match result {
            PeerResult::Answer {
                mut addresses,
                site,
            } => {
                addresses.retain(|a| family.matches(*a));
                addresses.sort_unstable();
                addresses.dedup();
                // "Not heard from" and "heard: none" both give no endpoints, so
                // only a different list is a change.
                let changed = k.addresses != addresses || k.stale;
                k.addresses = addresses;
                k.answered = Some(now);
                k.failing = false;
                k.stale = false;
                p.unreachable = false;
                if let (Some(s), false) = (site, p.configured_site) {
                    p.site = Some(s);
                }
                Changed { endpoints: changed }
            }
            PeerResult::Unreachable => {
                k.failing = true;
                p.unreachable = true;
                Changed::default()
            }
        }
    }

    /// Records what `peer` answered for `probes-<service>`: its own probe
    /// verdicts (an empty list when it probes nothing), or None when it did
    /// not answer (or has no such name: a k8gb peer, or a halo peer without
    /// probes). Only a peer that answers now has a vote.
    pub fn on_probes(
        &mut self,
        peer: usize,
        service: usize,
        verdicts: Option<Vec<(IpAddr, bool)>>,
    ) {
        if let Some(slot) = self
            .peers
            .get_mut(peer)
            .and_then(|p| p.probes.get_mut(service))
        {
            *slot = verdicts;
        }
    }

    /// What `address` of `service`'s site says and whether it answers:
    /// the site's peers are those of `site` (the endpoint's site, when
    /// known) and those that list the address.
    #[must_use]
    pub fn site_view(
        &self,
        service: usize,
        address: IpAddr,
        site: Option<&str>,
    ) -> (SiteWord, SiteDns) {
        let family = if address.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let mut word = SiteWord::Never;
        let mut dns = SiteDns::Stale;
        for p in &self.peers {
            let Some(k) = p.known.get(service).map(|k| &k[family.index()]) else {
                continue;
            };
            let listed = k.addresses.contains(&address);
            let of_site = site.is_some() && p.site.as_deref() == site;
            if !listed && !of_site {
                continue;
            }
            if listed {
                word = SiteWord::Listed;
            } else if k.answered.is_some() && word == SiteWord::Never {
                word = SiteWord::NotListed;
            }
            let this = match (k.answered, k.failing, k.stale) {
                (Some(_), false, _) => SiteDns::Reachable,
                // Failing but its answer still counts, or not asked yet:
                // silent for now, not stale.
                (Some(_), true, false) | (None, false, _) => SiteDns::Unreachable,
                _ => SiteDns::Stale,
            };
            dns = match (dns, this) {
                (SiteDns::Reachable, _) | (_, SiteDns::Reachable) => SiteDns::Reachable,
                (SiteDns::Unreachable, _) | (_, SiteDns::Unreachable) => SiteDns::Unreachable,
                _ => SiteDns::Stale,
            };
        }
        (word, dns)
    }

    /// The probe votes on `address` of `service` that other sites' peers
    /// publish: peers that answer now, other than `site`'s own.
    #[must_use]
    pub fn votes(&self, service: usize, address: IpAddr, site: Option<&str>) -> Votes {
        let family = if address.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let mut votes = Votes::default();
        for p in &self.peers {
            let lists = p
                .known
                .get(service)
                .is_some_and(|k| k[family.index()].addresses.contains(&address));
            if lists || site.is_some() && p.site.as_deref() == site {
                continue; // the endpoint's own site: its word, not a vote
            }
            let verdict = p
                .probes
                .get(service)
                .and_then(Option::as_ref)
                .and_then(|v| v.iter().find(|(a, _)| *a == address));
            match verdict {
                Some((_, true)) => votes.up += 1,
                Some((_, false)) => votes.down += 1,
                None => {}
            }
        }
        votes
    }

    /// Marks stale the answers older than `peer_stale_after` of peers that
    /// stopped answering.
    pub fn expire(&mut self, now: Instant) -> Changed {
        let mut changed = Changed::default();
        for p in &mut self.peers {
            for k in p.known.iter_mut().flatten() {
                let stale = k.failing
                    && k.answered
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.stale_after);
                if stale && !k.stale {
                    k.stale = true;
                    changed.endpoints |= !k.addresses.is_empty();
                }
            }
        }
        changed
    }

    /// When the next answer could go stale, for the caller's timer.
    #[must_use]
    pub fn next_expiry(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flat_map(|p| p.known.iter().flatten())
            .filter(|k| k.failing && !k.stale && !k.addresses.is_empty())
            .filter_map(|k| k.answered.map(|t| t + self.stale_after))
            .min()
    }

    /// Every (address, site name, fresh) peers publish for `service`, or
    /// published before they fell silent (`fresh` false once stale).
    pub fn endpoints(&self, service: usize) -> impl Iterator<Item = (IpAddr, Option<&str>, bool)> {
        self.peers.iter().flat_map(move |p| {
            p.known
                .get(service)
                .into_iter()
                .flatten()
                .flat_map(|k| k.addresses.iter().map(move |a| (*a, !k.stale)))
                .map(move |(a, fresh)| (a, p.site.as_deref(), fresh))
        })
    }
}
