//! The strategies: which of a service's endpoints one answer carries.
//!
//! Decisions are per site first (failover, geo), then per endpoint within the
//! chosen set (rotation, weighted draw). A service is "down" only when none of
//! its endpoints is healthy, whatever the address family asked: a site that is
//! up on IPv6 only answers an A query with no data rather than failing over.

use std::net::IpAddr;

use halo_config::{IpNet, Strategy, WhenAllDown};

use crate::peers::Family;
use crate::snapshot::EndpointState;
use crate::zone::{GeoRule, ServiceDef, SiteId, UNKNOWN_SITE};

/// Who is asking, for `geo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address (ECS address, else the packet's source).
    pub address: IpAddr,
    /// How many leading bits of `address` are known (ECS source prefix; the
    /// full length for a packet source).
    pub prefix: u8,
    /// It came from EDNS Client Subnet, so the reply carries a scope.
    pub ecs: bool,
}

/// Seeded randomness and a rotation counter, plus the buffer the chosen
/// addresses go into (kept between queries, so choosing does not allocate).
#[derive(Debug, Clone)]
pub struct Picker {
    state: u64,
    turn: u64,
    pub(crate) out: Vec<IpAddr>,
    scratch: Vec<(u32, IpAddr)>,
}

impl Picker {
    /// A picker whose draws follow from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            turn: 0,
            out: Vec::with_capacity(16),
            scratch: Vec::with_capacity(16),
        }
    }

    /// splitmix64: fast, and plenty for spreading answers.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; modulo bias is below 2^-40 for the total
    /// weights possible here, far below 2^24).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The result of choosing for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The picker's buffer holds the addresses (maybe none: no data for this
    /// family; with nothing healthy and `when_all_down = "all"`, every
    /// endpoint). `scope` is the ECS scope prefix for the reply.
    Addresses {
        /// ECS scope prefix length (0: the answer does not depend on the subnet).
        scope: u8,
    },
    /// Nothing healthy: answer NXDOMAIN.
    NxDomain,
    /// Nothing healthy: answer SERVFAIL.
    ServFail,
}

/// Chooses the addresses of `family` that `service` answers now, into
/// `picker.out`.
pub fn choose(
    service: &ServiceDef,
    endpoints: &[EndpointState],
    family: Family,
    client: Option<&Client>,
    geo: &[GeoRule],
    picker: &mut Picker,
) -> Choice {
    picker.out.clear();
    if !endpoints.iter().any(|e| e.healthy) {
        return match service.when_all_down {
            WhenAllDown::All => {
                rotated(
                    endpoints.iter().filter(|e| family.matches(e.address)),
                    picker,
                );
                Choice::Addresses { scope: 0 }
            }
            WhenAllDown::Nxdomain => Choice::NxDomain,
            WhenAllDown::Servfail => Choice::ServFail,
        };
    }
    let mut scope = 0;
    // The set of sites the answer comes from (None: every site).
    let site = match service.strategy {
        Strategy::RoundRobin | Strategy::Weighted { .. } => None,
        Strategy::Failover => Some(first_healthy_site(service, endpoints, None)),
        Strategy::Geo => {
            let (client_site, s) = client.map_or((None, 0), |c| geo_site(geo, c));
            if client.is_some_and(|c| c.ecs) {
                scope = s;
            }
            Some(first_healthy_site(service, endpoints, client_site))
        }
    };
    let chosen = |e: &&EndpointState| {
        e.healthy
            && family.matches(e.address)
            && match site {
                None => true,
                Some(SiteChoice::One(s)) => e.site == s,
                Some(SiteChoice::Unordered) => !service.failover_order.contains(&e.site),
            }
    };
    if let Strategy::Weighted { max_answers } = service.strategy {
        weighted(
            endpoints.iter().filter(chosen),
            usize::from(max_answers),
            picker,
        );
    } else {
        rotated(endpoints.iter().filter(chosen), picker);
    }
    Choice::Addresses { scope }
}

/// Which endpoints a site-based strategy answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteChoice {
    One(SiteId),
    /// No site in the order is healthy: every healthy site outside it.
    Unordered,
}

/// `preferred` if it has a healthy endpoint, else the first such site of the
/// failover order, else the healthy sites outside the order.
fn first_healthy_site(
    service: &ServiceDef,
    endpoints: &[EndpointState],
    preferred: Option<SiteId>,
) -> SiteChoice {
    let healthy = |site: SiteId| endpoints.iter().any(|e| e.healthy && e.site == site);
    preferred
        .into_iter()
        .chain(service.failover_order.iter().copied())
        .find(|&s| s != UNKNOWN_SITE && healthy(s))
        .map_or(SiteChoice::Unordered, SiteChoice::One)
}

/// The client's site by longest-prefix match, and the widest ECS scope for
/// which that result holds for every address of the scope's subnet.
fn geo_site(rules: &[GeoRule], client: &Client) -> (Option<SiteId>, u8) {
    let max = match client.address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let known = client.prefix.min(max);
    let mut best: Option<&GeoRule> = None;
    for r in rules {
        if same_family(r.net, client.address)
            && r.net.prefix_len() <= known
            && r.net.contains(&client.address)
            && best.is_none_or(|b| r.net.prefix_len() > b.net.prefix_len())
        {
            best = Some(r);
        }
    }
    // Addresses in client/L all get the same rule iff L reaches the matched
    // rule's length and no other rule (one not containing the client)
    // overlaps client/L, i.e. L is past the bits the client shares with it.
    let mut scope = best.map_or(0, |b| b.net.prefix_len());
    for r in rules {
        if !same_family(r.net, client.address) || r.net.contains(&client.address) {
            continue;
        }
        let shared = common_prefix(r.net.network(), client.address).min(r.net.prefix_len());
        scope = scope.max(shared + 1);
    }
    (best.map(|b| b.site), scope.min(max))
}

fn same_family(net: IpNet, a: IpAddr) -> bool {
    matches!(
        (net, a),
        (IpNet::V4(_), IpAddr::V4(_)) | (IpNet::V6(_), IpAddr::V6(_))
    )
}

fn common_prefix(a: IpAddr, b: IpAddr) -> u8 {
    let bits = match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => (u32::from(x) ^ u32::from(y)).leading_zeros(),
        (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x) ^ u128::from(y)).leading_zeros(),
        _ => 0,
    };
    u8::try_from(bits).unwrap_or(u8::MAX)
}

/// Every candidate into `picker.out`, rotated one further than last time.
fn rotated<'e>(candidates: impl Iterator<Item = &'e EndpointState>, picker: &mut Picker) {
    picker.out.extend(candidates.map(|e| e.address));
    let turn = picker.turn;
    picker.turn = picker.turn.wrapping_add(1);
    if picker.out.len() > 1 {
        let n = picker.out.len() as u64;
        // `turn % n` < n, so it fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let k = (turn % n) as usize;
        // rotate_left costs about 50 instructions even on two or three
        // addresses (callgrind); offset 0 needs nothing.
        if k != 0 {
            picker.out.rotate_left(k);
        }
    }
}

/// Draws up to `k` endpoints without replacement, each draw with probability
/// weight / remaining weight. All weights 0 counts as all equal (Route 53).
fn weighted<'e>(
    candidates: impl Iterator<Item = &'e EndpointState>,
    k: usize,
    picker: &mut Picker,
) {
    let mut pool = std::mem::take(&mut picker.scratch);
    pool.clear();
    pool.extend(candidates.map(|e| (u32::from(e.weight), e.address)));
    if pool.iter().all(|(w, _)| *w == 0) {
        for entry in &mut pool {
            entry.0 = 1;
        }
    } else {
        pool.retain(|(w, _)| *w > 0);
    }
    let mut total: u64 = pool.iter().map(|(w, _)| u64::from(*w)).sum();
    for _ in 0..k.min(pool.len()) {
        let mut r = picker.below(total);
        let i = pool
            .iter()
            .position(|(w, _)| {
                let w = u64::from(*w);
                if r < w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .unwrap_or(pool.len() - 1);
        let (w, addr) = pool.swap_remove(i);
        total -= u64::from(w);
        picker.out.push(addr);
    }
    picker.scratch = pool;
}
