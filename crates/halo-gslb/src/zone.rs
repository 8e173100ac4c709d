//! The zone as configured: which names exist and what is fixed about them.
//!
//! Names are kept as lower-case dotted bytes without the trailing dot, the form
//! halo-dns produces from a query's question, so a lookup is one hash probe.

use std::collections::HashMap;
use std::net::IpAddr;

use halo_config::{EndpointHealth, Gslb, IpNet, RecordData, StaticRecord, Strategy, WhenAllDown};

/// Index of a site in [`Zone::sites`].
pub type SiteId = u16;

/// A site nobody configured (a peer that has not said which site it is).
pub const UNKNOWN_SITE: SiteId = SiteId::MAX;

/// The SOA record's fields (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server.
    pub mname: String,
    /// Responsible mailbox, as a name.
    pub rname: String,
    /// Refresh, retry, expire (seconds): for secondaries, which halo does not use.
    pub refresh: u32,
    /// See `refresh`.
    pub retry: u32,
    /// See `refresh`.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308), also the SOA's own TTL.
    pub minimum: u32,
}

/// One `[[gslb.service]]`, with sites as indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    /// Relative name (`myapp`).
    pub name: String,
    /// How answers are chosen.
    pub strategy: Strategy,
    /// Site preference for failover and geo fallback.
    pub failover_order: Vec<SiteId>,
    /// Answer TTL.
    pub ttl: u32,
    /// What to answer with nothing healthy.
    pub when_all_down: WhenAllDown,
    /// How long a returning endpoint must stay up before it is answered.
    pub hold_down: std::time::Duration,
    /// How this node probes the other sites' endpoints; None: it does not.
    pub probe: Option<halo_config::Probe>,
    /// Configured endpoints.
    pub endpoints: Vec<EndpointDef>,
}

/// One configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDef {
    /// Address answered.
    pub address: IpAddr,
    /// Its site.
    pub site: SiteId,
    /// For `weighted`.
    pub weight: u16,
    /// Where its health comes from.
    pub health: EndpointHealth,
    /// In this node's site: published to peers as `localtargets-`.
    pub local: bool,
}

/// A `[[gslb.geo]]` rule with its site as an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeoRule {
    /// Client network.
    pub net: IpNet,
    /// Site for it.
    pub site: SiteId,
}

/// What a name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Static records (possibly none: an empty non-terminal, or the apex).
    Static(Vec<StaticRecord>),
    /// A service's answer name.
    Service(usize),
    /// `localtargets-<service>`: this node's healthy local endpoints.
    LocalTargets(usize),
    /// `probes-<service>`: this node's probe verdicts on the other sites'
    /// endpoints (services with a probe only).
    Probes(usize),
}

/// The outcome of looking a query name up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'z> {
    /// Not under the zone.
    OutOfZone,
    /// The apex (its static records, if any).
    Apex(&'z [StaticRecord]),
    /// A name with static records, or none (an empty non-terminal).
    Static(&'z [StaticRecord]),
    /// A service.
    Service(usize),
    /// A service's `localtargets-` name.
    LocalTargets(usize),
    /// A service's `probes-` name.
    Probes(usize),
    /// Under the zone, but nothing there.
    NxDomain,
}

/// The zone of one config.
#[derive(Debug, Clone)]
pub struct Zone {
    apex: String,
    /// Sites by [`SiteId`].
    pub sites: Vec<String>,
    /// This node's site.
    pub site: SiteId,
    /// SOA fields.
    pub soa: Soa,
    /// NS names.
    pub nameservers: Vec<String>,
    /// TTL of SOA, NS and the peers' site TXT.
    pub default_ttl: u32,
    /// Services by index.
    pub services: Vec<ServiceDef>,
    /// Geo rules.
    pub geo: Vec<GeoRule>,
    /// A/AAAA records of the name servers that are inside the zone.
    pub glue: Vec<StaticRecord>,
    /// Every name of the zone. Looked up once per query: foldhash, not
    /// std's SipHash (which cost about 120 instructions per query here,
    /// measured with callgrind). Flooding does not apply: the keys come from
    /// the config, queries only probe.
    names: Names,
}

type Names = HashMap<Box<[u8]>, Node, foldhash::fast::RandomState>;

impl Zone {
    /// The zone of `gslb` on a node in `site`.
    #[must_use]
    pub fn new(gslb: &Gslb, site: &str) -> Self {
        let mut sites = gslb.sites.clone();
        if !sites.iter().any(|s| s == site) {
            sites.push(site.to_owned());
            sites.sort();
        }
        let site_id = |name: &str| position(&sites, name);
        let own = site_id(site);
        let apex = gslb.zone.clone();
        let services: Vec<ServiceDef> = gslb
            .services
            .iter()
            .map(|s| ServiceDef {
                name: s.name.clone(),
                strategy: s.strategy,
                failover_order: s.failover_order.iter().map(|x| site_id(x)).collect(),
                ttl: s.ttl,
                when_all_down: s.when_all_down,
                hold_down: s.hold_down,
                probe: s.probe.clone(),
                endpoints: s
                    .endpoints
                    .iter()
                    .map(|e| EndpointDef {
                        address: e.address,
                        site: site_id(&e.site),
                        weight: e.weight,
                        health: e.health.clone(),
                        local: e.site == site,
                    })
                    .collect(),
            })
            .collect();

        let mut names = Names::default();
        let add_parents = |names: &mut Names, name: &str| {
            // Every name between a name and the apex exists (RFC 4592 §2.2.2:
            // empty non-terminals answer NODATA, not NXDOMAIN).
            let mut rest = name;
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() < apex.len() {
                    break;
                }
                names
                    .entry(parent.as_bytes().into())
                    .or_insert_with(|| Node::Static(Vec::new()));
                rest = parent;
            }
        };
        names.insert(apex.as_bytes().into(), Node::Static(Vec::new()));
        for (i, s) in services.iter().enumerate() {
            let fqdn = format!("{}.{apex}", s.name);
            add_parents(&mut names, &fqdn);
            names.insert(fqdn.as_bytes().into(), Node::Service(i));
            let targets = format!("localtargets-{}.{apex}", s.name);
            add_parents(&mut names, &targets);
            names.insert(targets.as_bytes().into(), Node::LocalTargets(i));
            if s.probe.is_some() {
                let probes = format!("probes-{}.{apex}", s.name);
                add_parents(&mut names, &probes);
                names.insert(probes.as_bytes().into(), Node::Probes(i));
            }
        }
        for r in &gslb.records {
            add_parents(&mut names, &r.name);
            if let Node::Static(list) = names
                .entry(r.name.as_bytes().into())
                .or_insert_with(|| Node::Static(Vec::new()))
            {
                list.push(r.clone());
            }
        }
        let glue = gslb
            .records
            .iter()
            .filter(|r| {
                matches!(r.data, RecordData::A(_) | RecordData::Aaaa(_))
                    && gslb.nameservers.contains(&r.name)
            })
            .cloned()
            .collect();
        let soa = Soa {
            mname: gslb
                .nameservers
                .first()
                .cloned()
                .unwrap_or_else(|| apex.clone()),
            rname: format!("hostmaster.{apex}"),
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: gslb.default_ttl,
        };
        Self {
            sites: sites.clone(),
            site: own,
            soa,
            nameservers: gslb.nameservers.clone(),
            default_ttl: gslb.default_ttl,
            geo: gslb
                .geo
                .iter()
                .map(|g| GeoRule {
                    net: g.cidr,
                    site: site_id(&g.site),
                })
                .collect(),
            services,
            glue,
            names,
            apex,
        }
    }

    /// The zone's name (lower-case, no trailing dot).
    #[must_use]
    pub fn apex(&self) -> &str {
        &self.apex
    }

    /// The [`SiteId`] of a site name, or [`UNKNOWN_SITE`].
    #[must_use]
    pub fn site_id(&self, name: &str) -> SiteId {
        position(&self.sites, name)
    }

    /// A site's name (`?` for [`UNKNOWN_SITE`]).
    #[must_use]
    pub fn site_name(&self, id: SiteId) -> &str {
        self.sites.get(usize::from(id)).map_or("?", String::as_str)
    }

    /// What `name` is: lower-case dotted bytes without the trailing dot.
    #[must_use]
    pub fn lookup(&self, name: &[u8]) -> Found<'_> {
        let apex = self.apex.as_bytes();
        let inside = name == apex
            || (name.len() > apex.len()
                && name.ends_with(apex)
                && name[name.len() - apex.len() - 1] == b'.');
        if !inside {
            return Found::OutOfZone;
        }
        match self.names.get(name) {
            None => Found::NxDomain,
            Some(Node::Static(records)) if name == apex => Found::Apex(records),
            Some(Node::Static(records)) => Found::Static(records),
            Some(Node::Service(i)) => Found::Service(*i),
            Some(Node::LocalTargets(i)) => Found::LocalTargets(*i),
            Some(Node::Probes(i)) => Found::Probes(*i),
        }
    }
}

fn position(sites: &[String], name: &str) -> SiteId {
    sites
        .iter()
        .position(|s| s == name)
        .and_then(|i| SiteId::try_from(i).ok())
        .unwrap_or(UNKNOWN_SITE)
}
