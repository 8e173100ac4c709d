//! The state of every service at one moment, and how a query is answered from it.
//!
//! A [`Snapshot`] is immutable: the I/O side builds a new one whenever local
//! health or a peer's answer changes and swaps it in; queries read whichever
//! one is current. [`Snapshot::resolve`] is the whole answering logic; it
//! borrows everything it returns, so answering does not allocate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use halo_config::{EndpointHealth, StaticRecord};

use crate::peers::{Family, PeerTable};
use crate::rtype;
use crate::select::{Choice, Client, Picker, choose};
use crate::verdict::{SiteDns, SiteWord, Verdict, Votes, judge};
use crate::zone::{Found, SiteId, Zone};

/// One endpoint of a service as it stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// Address answered.
    pub address: IpAddr,
    /// Its site.
    pub site: SiteId,
    /// For `weighted` (peer-learned endpoints have 1 unless configured).
    pub weight: u16,
    /// Whether answers may carry it.
    pub healthy: bool,
    /// For another site's endpoint of a probed service: the verdict and
    /// what it was drawn from.
    pub judged: Option<Judged>,
}

/// The verdict on another site's endpoint, with its inputs (see
/// [`crate::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// What its site said of it.
    pub word: SiteWord,
    /// Whether its site's DNS node answers.
    pub dns: SiteDns,
    /// This node's probe: Some(reaches it) once probed.
    pub mine: Option<bool>,
    /// Every probe vote, this node's included.
    pub votes: Votes,
    /// The verdict.
    pub verdict: Verdict,
    /// Since when the verdict has been what it is.
    pub since: Instant,
}

/// What [`Snapshot::build_settled`] needs to judge other sites' endpoints of
/// services with a probe.
pub struct Probing<'a> {
    /// Now.
    pub now: Instant,
    /// This node's probe of (service, address): Some(reaches it) when it
    /// probes it and has a result.
    pub mine: &'a dyn Fn(usize, IpAddr) -> Option<bool>,
    /// The judgement of (service, address) in the previous snapshot.
    pub previous: &'a dyn Fn(usize, IpAddr) -> Option<Judged>,
}

impl std::fmt::Debug for Probing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probing")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The id of a site a peer names: configured, or learned (appended to
/// `learned`, ids from `zone.sites.len()` on).
fn learn_site(zone: &Zone, learned: &mut Vec<String>, name: Option<&str>) -> SiteId {
    let Some(name) = name else {
        return crate::zone::UNKNOWN_SITE;
    };
    let known = zone.site_id(name);
    if known != crate::zone::UNKNOWN_SITE {
        return known;
    }
    let at = learned.iter().position(|s| s == name).unwrap_or_else(|| {
        learned.push(name.to_owned());
        learned.len() - 1
    });
    SiteId::try_from(zone.sites.len() + at).unwrap_or(crate::zone::UNKNOWN_SITE)
}

/// A site's name: configured, or learned from a peer; None when unknown.
fn site_name_of<'a>(zone: &'a Zone, learned: &'a [String], id: SiteId) -> Option<&'a str> {
    if id == crate::zone::UNKNOWN_SITE {
        return None;
    }
    match usize::from(id).checked_sub(zone.sites.len()) {
        None => Some(zone.site_name(id)),
        Some(at) => learned.get(at).map(String::as_str),
    }
}

/// One question, as halo-dns parsed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'q> {
    /// Lower-case dotted name without the trailing dot.
    pub name: &'q [u8],
    /// Record type asked.
    pub qtype: u16,
    /// Who asks (for geo).
    pub client: Option<Client>,
}

/// Response code (RFC 1035 §4.1.1, RFC 6895).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    /// No error.
    NoError = 0,
    /// Malformed query.
    FormErr = 1,
    /// Server failure (also `when_all_down = "servfail"`).
    ServFail = 2,
    /// No such name.
    NxDomain = 3,
    /// Opcode not implemented.
    NotImp = 4,
    /// Not our zone.
    Refused = 5,
}

/// The answer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Nothing (NODATA, NXDOMAIN, errors).
    None,
    /// The records of `records` whose type is `rtype`.
    Records {
        /// Records at the name.
        records: &'a [StaticRecord],
        /// The type to write.
        rtype: u16,
    },
    /// A service's chosen addresses.
    Addresses {
        /// TTL of each.
        ttl: u32,
        /// Addresses, in order.
        addresses: &'a [IpAddr],
    },
    /// The zone's SOA.
    Soa,
    /// The zone's NS records.
    Ns,
    /// `localtargets-` TXT: this node's site, `"site=<name>"`.
    SiteTxt,
    /// `probes-` TXT of service `.0`: one record per endpoint this node
    /// probes, `"<address> up"` or `"<address> down"`.
    ProbesTxt(usize),
}

/// The authority section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// Nothing.
    None,
    /// The SOA (negative answers, RFC 2308).
    Soa,
}

/// What to reply to one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// Response code.
    pub rcode: Rcode,
    /// AA flag: set for every name inside the zone.
    pub authoritative: bool,
    /// Answer section.
    pub answer: Answer<'a>,
    /// Authority section.
    pub authority: Authority,
    /// Additional section: glue of the name servers (NS answers).
    pub glue: bool,
    /// Additional section: this node's site as a TXT (`localtargets-` answers),
    /// so a halo peer learns which site the addresses belong to.
    pub site_txt: bool,
    /// ECS scope prefix length for the reply (0: not subnet-specific).
    pub ecs_scope: u8,
}

impl Response<'_> {
    fn new(rcode: Rcode, answer: Answer<'_>, authority: Authority) -> Response<'_> {
        Response {
            rcode,
            authoritative: true,
            answer,
            authority,
            glue: false,
            site_txt: false,
            ecs_scope: 0,
        }
    }

    fn nodata() -> Self {
        Response::new(Rcode::NoError, Answer::None, Authority::Soa)
    }
}

/// Health of every service at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The zone it answers for.
    pub zone: Arc<Zone>,
    /// SOA serial; the I/O side raises it with every new snapshot.
    pub serial: u32,
    /// Per service: configured endpoints, then those only peers publish.
    pub services: Vec<Vec<EndpointState>>,
    /// Per service: this node's healthy local endpoints (`localtargets-`).
    pub local: Vec<Vec<IpAddr>>,
    /// Per service: this node's probe results on other sites' endpoints
    /// (`probes-`), for its peers' votes.
    pub probes: Vec<Vec<(IpAddr, bool)>>,
    /// Sites only peers name (not in the config): endpoint site ids from
    /// `zone.sites.len()` on. No strategy refers to them; they are for
    /// showing where an address comes from.
    pub learned_sites: Vec<String>,
}

impl Snapshot {
    /// The state given local health (`local_up(service, endpoint)` for
    /// endpoints whose health is a pool or a check) and what peers publish.
    pub fn build(
        zone: Arc<Zone>,
        serial: u32,
        local_up: &dyn Fn(usize, usize) -> bool,
        peers: &PeerTable,
    ) -> Self {
        Self::build_settled(zone, serial, local_up, peers, None, &mut |_, _, up| up)
    }

    /// As [`Self::build`], the health of each endpoint this node judges
    /// itself (a pool or a check of its own) then passed through
    /// `settle(service, address, healthy)` (the controller's hold-down)
    /// before answers and `localtargets-` are drawn from it. (Peers apply
    /// their own hold-down to what they publish.) With `probing`, the other
    /// sites' endpoints of services with a probe are judged by
    /// [`crate::verdict::judge`].
    pub fn build_settled(
        zone: Arc<Zone>,
        serial: u32,
        local_up: &dyn Fn(usize, usize) -> bool,
        peers: &PeerTable,
        probing: Option<&Probing<'_>>,
        settle: &mut dyn FnMut(usize, IpAddr, bool) -> bool,
    ) -> Self {
        let mut services = Vec::with_capacity(zone.services.len());
        let mut local = Vec::with_capacity(zone.services.len());
        let mut probes = Vec::with_capacity(zone.services.len());
        let mut learned_sites: Vec<String> = Vec::new();
        for (si, svc) in zone.services.iter().enumerate() {
            let mut eps: Vec<EndpointState> = svc
                .endpoints
                .iter()
                .enumerate()
                .map(|(ei, e)| EndpointState {
                    address: e.address,
                    site: e.site,
                    weight: e.weight,
                    judged: None,
                    healthy: match &e.health {
                        EndpointHealth::Always => true,
                        EndpointHealth::Peers => peers
                            .endpoints(si)
                            .any(|(a, _, fresh)| fresh && a == e.address),
                        EndpointHealth::Pool(_) | EndpointHealth::Check(_) => local_up(si, ei),
                    },
                })
                .collect();
            // Addresses only peers publish; a stale peer's are kept
            // (unhealthy), so `when_all_down = "all"` still answers them.
            let configured = eps.len();
            for (address, site, fresh) in peers.endpoints(si) {
                match eps.iter().position(|e| e.address == address) {
                    // (Two peers with one address: healthy if one is fresh.)
                    Some(i) if i >= configured => eps[i].healthy |= fresh,
                    Some(_) => {}
                    None => eps.push(EndpointState {
                        address,
                        site: learn_site(&zone, &mut learned_sites, site),
                        weight: 1,
                        healthy: fresh,
                        judged: None,
                    }),
                }
            }
            for (def, e) in svc.endpoints.iter().zip(&mut eps) {
                if matches!(
                    def.health,
                    EndpointHealth::Pool(_) | EndpointHealth::Check(_)
                ) {
                    e.healthy = settle(si, e.address, e.healthy);
                }
            }
            let mut mine = Vec::new();
            if let Some(p) = probing.filter(|_| svc.probe.is_some()) {
                for (i, e) in eps.iter_mut().enumerate() {
                    // Other sites' endpoints their peers speak for: those
                    // with `peers` health, and those only peers publish.
                    let by_peers = svc
                        .endpoints
                        .get(i)
                        .is_none_or(|d| d.health == EndpointHealth::Peers);
                    if !by_peers {
                        continue;
                    }
                    let site = site_name_of(&zone, &learned_sites, e.site);
                    let (word, dns) = peers.site_view(si, e.address, site);
                    let probe = (p.mine)(si, e.address);
                    let mut votes = peers.votes(si, e.address, site);
                    match probe {
                        Some(true) => votes.up += 1,
                        Some(false) => votes.down += 1,
                        None => {}
                    }
                    if let Some(up) = probe {
                        mine.push((e.address, up));
                    }
                    let before = (p.previous)(si, e.address);
                    let verdict = judge(word, dns, votes, before.map(|j| j.verdict.up));
                    let since = match before {
                        Some(j) if j.verdict.up == verdict.up => j.since,
                        _ => p.now,
                    };
                    e.healthy = verdict.up;
                    e.judged = Some(Judged {
                        word,
                        dns,
                        mine: probe,
                        votes,
                        verdict,
                        since,
                    });
                }
            }
            probes.push(mine);
            local.push(
                svc.endpoints
                    .iter()
                    .zip(&eps)
                    .filter(|(def, state)| def.local && state.healthy)
                    .map(|(_, state)| state.address)
                    .collect(),
            );
            services.push(eps);
        }
        Self {
            zone,
            serial,
            services,
            local,
            probes,
            learned_sites,
        }
    }

    /// A site's name: configured, or learned from a peer; `?` if unknown.
    #[must_use]
    pub fn site_name(&self, id: SiteId) -> &str {
        site_name_of(&self.zone, &self.learned_sites, id).unwrap_or("?")
    }

    /// The reply to `query`. Chosen addresses live in `picker` until its next use.
    pub fn resolve<'a>(&'a self, query: &Query<'_>, picker: &'a mut Picker) -> Response<'a> {
        let qtype = query.qtype;
        match self.zone.lookup(query.name) {
            Found::OutOfZone => Response {
                authoritative: false,
                ..Response::new(Rcode::Refused, Answer::None, Authority::None)
            },
            Found::NxDomain => Response::new(Rcode::NxDomain, Answer::None, Authority::Soa),
            Found::Apex(records) => match qtype {
                rtype::SOA | rtype::ANY => {
                    Response::new(Rcode::NoError, Answer::Soa, Authority::None)
                }
                rtype::NS => Response {
                    glue: true,
                    ..Response::new(Rcode::NoError, Answer::Ns, Authority::None)
                },
                _ => static_answer(records, qtype),
            },
            Found::Static(records) => static_answer(records, qtype),
            Found::Probes(i) => match qtype {
                rtype::TXT | rtype::ANY => {
                    let answer = Answer::ProbesTxt(i);
                    let empty = self.probes.get(i).is_none_or(Vec::is_empty);
                    let authority = if empty {
                        Authority::Soa
                    } else {
                        Authority::None
                    };
                    Response::new(Rcode::NoError, answer, authority)
                }
                _ => Response::nodata(),
            },
            Found::LocalTargets(i) => {
                let answer = match qtype {
                    rtype::A | rtype::AAAA | rtype::ANY => {
                        let family = family_of(qtype, self.local[i].iter().copied());
                        picker.out.clear();
                        picker
                            .out
                            .extend(self.local[i].iter().filter(|a| family.matches(**a)));
                        Answer::Addresses {
                            ttl: self.zone.services[i].ttl,
                            addresses: &picker.out,
                        }
                    }
                    rtype::TXT => Answer::SiteTxt,
                    _ => Answer::None,
                };
                Response {
                    site_txt: !matches!(answer, Answer::SiteTxt),
                    ..Response::new(Rcode::NoError, answer, soa_if_empty(answer))
                }
            }
            Found::Service(i) => {
                if !matches!(qtype, rtype::A | rtype::AAAA | rtype::ANY) {
                    return Response::nodata();
                }
                let svc = &self.zone.services[i];
                let eps = &self.services[i];
                let family = family_of(qtype, eps.iter().map(|e| e.address));
                match choose(
                    svc,
                    eps,
                    family,
                    query.client.as_ref(),
                    &self.zone.geo,
                    picker,
                ) {
                    Choice::Addresses { scope, .. } => {
                        let answer = Answer::Addresses {
                            ttl: svc.ttl,
                            addresses: &picker.out,
                        };
                        Response {
                            ecs_scope: scope,
                            ..Response::new(Rcode::NoError, answer, soa_if_empty(answer))
                        }
                    }
                    Choice::NxDomain => {
                        Response::new(Rcode::NxDomain, Answer::None, Authority::Soa)
                    }
                    Choice::ServFail => {
                        Response::new(Rcode::ServFail, Answer::None, Authority::None)
                    }
                }
            }
        }
    }
}

/// The family a question asks for. ANY gets one RRset (RFC 8482): the A one,
/// unless the name has no IPv4 address.
fn family_of(qtype: u16, mut addresses: impl Iterator<Item = IpAddr>) -> Family {
    match qtype {
        rtype::AAAA => Family::V6,
        rtype::ANY if !addresses.any(|a| a.is_ipv4()) => Family::V6,
        _ => Family::V4,
    }
}

fn soa_if_empty(answer: Answer<'_>) -> Authority {
    match answer {
        Answer::None | Answer::Addresses { addresses: [], .. } => Authority::Soa,
        _ => Authority::None,
    }
}

/// Static records of `qtype` at a name; a CNAME answers every type; ANY gets
/// one RRset.
fn static_answer(records: &[StaticRecord], qtype: u16) -> Response<'_> {
    let has = |t: u16| records.iter().any(|r| r.data.rtype() == t);
    let rtype = if has(rtype::CNAME) {
        rtype::CNAME
    } else if qtype == rtype::ANY {
        match records.first() {
            Some(r) => r.data.rtype(),
            None => return Response::nodata(),
        }
    } else if has(qtype) {
        qtype
    } else {
        return Response::nodata();
    };
    Response::new(
        Rcode::NoError,
        Answer::Records { records, rtype },
        Authority::None,
    )
}
