//! Server selection algorithms over a snapshot of candidates. No I/O; the only
//! state is round-robin's current weights and a seeded random generator.
//!
//! | `balance`     | picks                                                             |
//! |---------------|-------------------------------------------------------------------|
//! | `round-robin` | smooth weighted round robin (nginx's): exact shares, interleaved  |
//! | `least-conn`  | fewest in-flight per weight; ties rotate                          |
//! | `source`      | weighted rendezvous hash of the client address: when a server     |
//! |               | leaves, only its clients move, and they move back when it returns |
//! | `random-two`  | two weighted random draws, the one with fewer in-flight per weight|
//! | `first`       | the first candidate (file order) with a free `max_conns` slot     |

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use halo_config::Balance;

/// What the balancer needs to know of one eligible server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Position in the pool (stable for the pool's lifetime).
    pub index: usize,
    /// 1..=256 (weight 0 servers are never candidates).
    pub weight: u32,
    /// Requests or connections in flight now.
    pub in_flight: u32,
    /// Stable hash of the server's identity, for `source`.
    pub id_hash: u64,
}

/// Picks a server; one per pool.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Balance,
    /// Smooth weighted round robin's current weight per pool index.
    current: Mutex<Vec<i64>>,
    /// splitmix64 state; advanced atomically so picks never lock.
    rng: AtomicU64,
}

impl Balancer {
    /// A balancer for a pool of `servers` servers.
    #[must_use]
    pub fn new(algorithm: Balance, servers: usize, seed: u64) -> Self {
        Self {
            algorithm,
            current: Mutex::new(vec![0; servers]),
            rng: AtomicU64::new(seed),
        }
    }

    /// The index of the chosen candidate's server, `None` if there are none.
    /// `client_hash` is a hash of the client address (used by `source`).
    pub fn pick(&self, candidates: &[Candidate], client_hash: u64) -> Option<usize> {
        match candidates {
            [] => None,
            // Smooth round robin would add the weight and subtract the same total:
            // a lone candidate leaves the state unchanged, so no lock is needed.
            [only] => Some(only.index),
            _ => Some(match self.algorithm {
                Balance::LeastConn => self.least_conn(candidates),
                Balance::Source => rendezvous(candidates, client_hash),
                Balance::RandomTwo => self.random_two(candidates),
                Balance::First => candidates[0].index,
                // `Balance` is non-exhaustive; round robin is the safe default.
                _ => self.round_robin(candidates),
            }),
        }
    }

    fn round_robin(&self, candidates: &[Candidate]) -> usize {
        // A poisoned lock only means another pick panicked mid-update; the
        // weights are still usable numbers.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: i64 = candidates.iter().map(|c| i64::from(c.weight)).sum();
        let mut best = candidates[0].index;
        let mut best_weight = i64::MIN;
        for c in candidates {
            let w = &mut current[c.index];
            *w += i64::from(c.weight);
            if *w > best_weight {
                best_weight = *w;
                best = c.index;
            }
        }
        current[best] -= total;
        best
    }

    fn least_conn(&self, candidates: &[Candidate]) -> usize {
        // Compare in_flight/weight without division: a.f * b.w vs b.f * a.w.
        let load = |c: &Candidate| (u64::from(c.in_flight), u64::from(c.weight));
        let (mut f, mut w) = load(&candidates[0]);
        for c in &candidates[1..] {
            let (cf, cw) = load(c);
            if cf * w < f * cw {
                (f, w) = (cf, cw);
            }
        }
        let ties: Vec<usize> = candidates
            .iter()
            .filter(|c| {
                let (cf, cw) = load(c);
                cf * w == f * cw
            })
            .map(|c| c.index)
            .collect();
        // Rotate among equally loaded servers so idle pools spread too.
        let n = self.next_random();
        ties[usize::try_from(n % ties.len() as u64).unwrap_or(0)]
    }

    fn random_two(&self, candidates: &[Candidate]) -> usize {
        let a = self.weighted_draw(candidates);
        let b = self.weighted_draw(candidates);
        let (ca, cb) = (&candidates[a], &candidates[b]);
        if u64::from(cb.in_flight) * u64::from(ca.weight)
            < u64::from(ca.in_flight) * u64::from(cb.weight)
        {
            cb.index
        } else {
            ca.index
        }
    }

    /// A position in `candidates` drawn with probability proportional to weight.
    fn weighted_draw(&self, candidates: &[Candidate]) -> usize {
        let total: u64 = candidates.iter().map(|c| u64::from(c.weight)).sum();
        let mut r = self.next_random() % total.max(1);
        for (i, c) in candidates.iter().enumerate() {
            let w = u64::from(c.weight);
            if r < w {
                return i;
            }
            r -= w;
        }
        candidates.len() - 1
    }

    fn next_random(&self) -> u64 {
        let z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(z)
    }
}

/// Weighted rendezvous (highest random weight) hashing: each server scores
/// `-weight / ln(u)` with `u` uniform from hash(client, server); the best score
/// wins. Removing a server changes only the picks it was winning.
fn rendezvous(candidates: &[Candidate], client_hash: u64) -> usize {
    let mut best = candidates[0].index;
    let mut best_score = f64::NEG_INFINITY;
    for c in candidates {
        let h = mix64(client_hash ^ c.id_hash.rotate_left(17));
        // Map to (0, 1): never 0, so ln is finite and negative.
        #[allow(clippy::cast_precision_loss)]
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = -f64::from(c.weight) / u.ln();
        if score > best_score {
            best_score = score;
            best = c.index;
        }
    }
    best
}

/// splitmix64's finaliser: a fast, well-mixed 64-bit hash step.
#[must_use]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
