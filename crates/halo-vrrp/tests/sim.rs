//! Deterministic simulation of several VRRP routers on one link: a virtual
//! clock, seeded latency, loss and partitions, and the RFC's promises checked
//! at every event. Each seed draws its own setup (2–4 routers, priorities,
//! interval 1 s or 100 ms, start phases, latency); a failure names its seed,
//! and `HALO_VRRP_SEED=N cargo test -p halo-vrrp --test sim` replays it alone.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use halo_vrrp::{Action, Input, Router, Settings, State, Version};

/// splitmix64: small, seeded, repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

struct Node {
    router: Router,
    up: bool,
    holds: bool,
}

/// One advertisement in flight.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: Instant,
    seq: u64,
    to: usize,
    from: usize,
    priority: u8,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: Instant,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    interval: Duration,
    max_latency: Duration,
    loss_per_mille: u64,
    /// Side of each node while partitioned; None = one link.
    partition: Option<Vec<bool>>,
    /// Times (since start) when more than one node held the addresses.
    dual: Vec<Duration>,
    start: Instant,
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + u8::try_from(i).unwrap()))
}

impl Sim {
    fn new(seed: u64, priorities: &[u8], preempt: bool, preempt_delay: Duration) -> Self {
        let mut rng = Rng(seed);
        let interval = if rng.chance(500) {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        };
        let max_latency = Duration::from_micros(100 + rng.below(2000));
        #[allow(
            clippy::disallowed_methods,
            reason = "the simulation's epoch; time then only moves virtually"
        )]
        let start = Instant::now();
        let nodes = priorities
            .iter()
            .enumerate()
            .map(|(i, &priority)| Node {
                router: Router::new(Settings {
                    version: Version::V3,
                    priority,
                    interval,
                    preempt,
                    preempt_delay,
                    primary: addr(i),
                    accept: true,
                }),
                up: false,
                holds: false,
            })
            .collect();
        Self {
            seed,
            rng,
            now: start,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            interval,
            max_latency,
            loss_per_mille: 0,
            partition: None,
            dual: Vec::new(),
            start,
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let mut out = Vec::new();
        self.nodes[i].router.handle(input, self.now, &mut out);
        for a in out {
            match a {
                Action::Send { priority } => {
                    for to in 0..self.nodes.len() {
                        if to == i || self.rng.chance(self.loss_per_mille) {
                            continue;
                        }
                        let latency = self
                            .max_latency
                            .mul_f64(self.rng.below(1000) as f64 / 1000.0);
                        self.seq += 1;
                        self.queue.push(Reverse(Packet {
                            at: self.now + latency,
                            seq: self.seq,
                            to,
                            from: i,
                            priority,
                        }));
                    }
                }
                Action::AddAddresses => self.nodes[i].holds = true,
                Action::RemoveAddresses => self.nodes[i].holds = false,
                Action::Transition { .. } => {}
            }
        }
        self.observe();
    }

    fn observe(&mut self) {
        if self.holders().len() > 1 {
            let t = self.now - self.start;
            if self.dual.last() != Some(&t) {
                self.dual.push(t);
            }
        }
    }

    fn holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up && self.nodes[i].holds)
            .collect()
    }

    fn start_node(&mut self, i: usize) {
        self.nodes[i].up = true;
        self.input(i, Input::Start);
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.nodes[i].holds = false;
        // Back to Initialize without a word on the wire (the actions, its
        // priority-0 advert among them, are dropped): a later start begins
        // from scratch.
        self.nodes[i]
            .router
            .handle(Input::Shutdown, self.now, &mut Vec::new());
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.partition
            .as_ref()
            .is_none_or(|side| side[a] == side[b])
    }

    /// Advances the virtual clock to `until`, event by event.
    fn run_until(&mut self, until: Instant) {
        loop {
            let packet = self.queue.peek().map(|Reverse(p)| p.at);
            let timer = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].up)
                .filter_map(|i| self.nodes[i].router.next_deadline())
                .min();
            let Some(next) = [packet, timer].into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if packet == Some(next) {
                let Some(Reverse(p)) = self.queue.pop() else {
                    break;
                };
                if self.nodes[p.to].up && self.connected(p.from, p.to) {
                    let input = Input::Advert {
                        from: addr(p.from),
                        priority: p.priority,
                        interval: self.interval,
                    };
                    self.input(p.to, input);
                }
            } else {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].up
                        && self.nodes[i]
                            .router
                            .next_deadline()
                            .is_some_and(|t| t <= self.now)
                    {
                        self.input(i, Input::Tick);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// A node that should be master among those up: the highest priority
    /// (then the highest address). With equal top priorities the RFC keeps
    /// whichever became master first: a backup yields to an equal priority;
    /// the address decides only between two masters.
    fn rightful(&self, among: impl Iterator<Item = usize>) -> Option<usize> {
        among
            .filter(|&i| self.nodes[i].up)
            .max_by_key(|&i| (self.nodes[i].router.priority(), addr(i)))
    }

    /// Runs to `until` and asserts that one node of `want`'s priority holds
    /// the addresses, the same one the whole time (checked every quarter
    /// interval, dual masters at every event). Returns that node.
    fn steady(&mut self, until: Instant, want: usize, what: &str) -> usize {
        let dual_before = self.dual.len();
        let priority = self.nodes[want].router.priority();
        let mut holder = None;
        while self.now < until {
            let step = (self.now + self.interval / 4).min(until);
            self.run_until(step);
            let h = self.holders();
            let at = self.now - self.start;
            assert!(
                h.len() == 1 && self.nodes[h[0]].router.priority() == priority,
                "seed {}: {what} at {at:?}: holders {h:?}, wanted {want} (or its equal)",
                self.seed
            );
            assert!(
                holder.is_none_or(|x| x == h[0]),
                "seed {}: {what}: master changed at {at:?}",
                self.seed
            );
            holder = Some(h[0]);
        }
        assert_eq!(
            self.dual.len(),
            dual_before,
            "seed {}: dual master during {what}",
            self.seed
        );
        holder.unwrap_or(want)
    }

    /// Runs until a node other than `not` holds the addresses; returns how
    /// long it took, rounded up to the next [`STEP`].
    fn until_taken_over(&mut self, not: Option<usize>, limit: Duration) -> Duration {
        let from = self.now;
        let step = STEP;
        while self.now - from <= limit {
            let h = self.holders();
            if h.len() == 1 && Some(h[0]) != not {
                return self.now - from;
            }
            let next = self.now + step;
            self.run_until(next);
        }
        panic!(
            "seed {}: no takeover within {limit:?} (holders {:?})",
            self.seed,
            self.holders()
        );
    }
}

/// Resolution of takeover times; bounds allow one more.
const STEP: Duration = Duration::from_micros(100);

fn seeds() -> Vec<u64> {
    match std::env::var("HALO_VRRP_SEED") {
        Ok(s) => vec![s.parse().expect("HALO_VRRP_SEED is a number")],
        Err(_) => (1..=300).collect(),
    }
}

/// Distinct priorities in 1..=254 for `n` routers, or with a tie for the top.
fn priorities(rng: &mut Rng, n: usize, tie: bool) -> Vec<u8> {
    let mut p: Vec<u8> = Vec::new();
    while p.len() < n {
        let x = 1 + u8::try_from(rng.below(254)).unwrap();
        if !p.contains(&x) {
            p.push(x);
        }
    }
    if tie {
        let top = *p.iter().max().unwrap();
        let other = (0..n).find(|&i| p[i] != top).unwrap();
        p[other] = top;
    }
    p
}

/// Election, crash takeover within Master_Down_Interval, preemption on
/// return, graceful handover within Skew_Time: for every seed.
#[test]
fn election_crash_return_and_graceful_handover() {
    for seed in seeds() {
        let mut rng = Rng(seed ^ 0xA5A5);
        let n = 2 + usize::try_from(rng.below(3)).unwrap();
        let tie = rng.chance(300);
        let prio = priorities(&mut rng, n, tie);
        let mut sim = Sim::new(seed, &prio, true, Duration::ZERO);
        let interval = sim.interval;
        // Start in random phases within one interval.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|_| rng.next());
        for &i in &order {
            let at = sim.now + interval.mul_f64(rng.below(1000) as f64 / 1000.0);
            sim.run_until(at);
            sim.start_node(i);
        }
        // Settled after one Master_Down_Interval (< 4 intervals) plus latency.
        let settle = sim.now + 4 * interval + sim.max_latency * 4;
        sim.run_until(settle);
        let rightful = sim.rightful(0..n).unwrap();
        let until = sim.now + 20 * interval;
        let master = sim.steady(until, rightful, "steady state after election");

        // Crash: the next in line takes over within its Master_Down_Interval
        // (its timer started at the last advert it heard, before the crash).
        sim.crash(master);
        let next = sim.rightful(0..n).unwrap();
        let bound = sim.nodes[next].router.master_down_interval() + sim.max_latency + STEP;
        let took = sim.until_taken_over(Some(master), bound + interval);
        assert!(
            took <= bound,
            "seed {seed}: crash takeover {took:?} > {bound:?}"
        );
        // When two backups' skews differ by less than the latency, the lower
        // one can time out first (as with any RFC router); the rightful one
        // then preempts it within its Master_Down_Interval.
        settle_on(&mut sim, next, "after crash takeover");

        // The old master returns and preempts (highest priority, preempt on)
        // within its own Master_Down_Interval.
        sim.start_node(master);
        let bound = sim.nodes[master].router.master_down_interval() + 2 * sim.max_latency;
        let until = sim.now + bound;
        sim.run_until(until);
        let until = sim.now + 10 * interval;
        sim.steady(until, master, "after the old master returned");

        // Graceful: priority 0 makes the next in line take over after its skew.
        sim.input(master, Input::Shutdown);
        sim.nodes[master].up = false;
        let bound = sim.nodes[next].router.skew_time() + sim.max_latency + STEP;
        let took = sim.until_taken_over(Some(master), bound + interval);
        assert!(
            took <= bound,
            "seed {seed}: graceful handover {took:?} > skew {bound:?}"
        );
        settle_on(&mut sim, next, "after graceful handover");
    }
}

/// Runs one Master_Down_Interval of `want` (plus latency), then asserts
/// `want` alone holds the addresses for 10 intervals.
fn settle_on(sim: &mut Sim, want: usize, what: &str) {
    let until = sim.now + sim.nodes[want].router.master_down_interval() + 2 * sim.max_latency;
    sim.run_until(until);
    let until = sim.now + 10 * sim.interval;
    sim.steady(until, want, what);
}

/// A partition elects a master on each side (expected); once it heals, one
/// master remains within one advertisement interval.
#[test]
fn partition_heals_to_one_master_within_an_interval() {
    for seed in seeds() {
        let mut rng = Rng(seed ^ 0x5A5A);
        let n = 2 + usize::try_from(rng.below(3)).unwrap();
        let tie = rng.chance(300);
        let prio = priorities(&mut rng, n, tie);
        let mut sim = Sim::new(seed, &prio, true, Duration::ZERO);
        let interval = sim.interval;
        for i in 0..n {
            sim.start_node(i);
        }
        let settle = sim.now + 4 * interval + sim.max_latency * 4;
        sim.run_until(settle);
        let rightful = sim.rightful(0..n).unwrap();
        let until = sim.now + interval;
        let master = sim.steady(until, rightful, "before the partition");
        // The master alone on one side.
        sim.partition = Some((0..n).map(|i| i == master).collect());
        let until = sim.now + 10 * interval;
        sim.run_until(until);
        let other = sim.rightful((0..n).filter(|&i| i != master)).unwrap();
        let both = sim.holders();
        assert!(
            both.len() == 2 && both.contains(&master),
            "seed {seed}: each side has its master: {both:?}"
        );
        sim.partition = None;
        let until = sim.now + interval + 2 * sim.max_latency;
        sim.run_until(until);
        // The higher of the two masters (by priority, then address) stays.
        let winner = sim.rightful([master, other].into_iter()).unwrap();
        let until = sim.now + 10 * interval;
        let kept = sim.steady(until, winner, "after the partition healed");
        assert!(kept == master || kept == other, "seed {seed}");
    }
}

/// Without preemption a higher-priority router that returns stays backup;
/// with `preempt_delay` it waits that long before taking over.
#[test]
fn no_preempt_and_preempt_delay() {
    for seed in seeds().into_iter().take(50) {
        for delay in [None, Some(Duration::from_secs(3))] {
            let preempt_delay = delay.unwrap_or_default();
            let mut sim = Sim::new(seed, &[200, 100], delay.is_some(), preempt_delay);
            let interval = sim.interval;
            sim.start_node(1);
            let until = sim.now + 5 * interval;
            sim.run_until(until);
            assert_eq!(
                sim.holders(),
                vec![1],
                "seed {seed}: the only router is master"
            );
            sim.start_node(0);
            match delay {
                None => {
                    let until = sim.now + 20 * interval;
                    sim.steady(until, 1, "no preemption");
                    assert_eq!(sim.nodes[0].router.state(), State::Backup);
                }
                Some(d) => {
                    // Not before the delay...
                    let until = sim.now + d - interval / 2;
                    sim.steady(until, 1, "within preempt_delay");
                    // ...and within delay + Master_Down_Interval after it.
                    let bound = sim.nodes[0].router.master_down_interval() + interval;
                    let took = sim.until_taken_over(Some(1), bound + interval);
                    assert!(
                        took <= bound,
                        "seed {seed}: preempted {took:?} after the delay"
                    );
                    assert_eq!(sim.holders(), vec![0]);
                }
            }
        }
    }
}

/// With 20 % of advertisements lost, masters may flap (three in a row lost
/// looks like a crash); once loss stops, one master within one
/// Master_Down_Interval and none twice after.
#[test]
fn loss_then_recovery() {
    for seed in seeds().into_iter().take(100) {
        let mut rng = Rng(seed ^ 0x1234);
        let n = 2 + usize::try_from(rng.below(3)).unwrap();
        let prio = priorities(&mut rng, n, false);
        let mut sim = Sim::new(seed, &prio, true, Duration::ZERO);
        let interval = sim.interval;
        sim.loss_per_mille = 200;
        for i in 0..n {
            sim.start_node(i);
        }
        let until = sim.now + 50 * interval;
        sim.run_until(until);
        sim.loss_per_mille = 0;
        let master = sim.rightful(0..n).unwrap();
        let until = sim.now + 4 * interval + 2 * sim.max_latency;
        sim.run_until(until);
        let until = sim.now + 20 * interval;
        sim.steady(until, master, "after loss stopped");
    }
}
