use std::collections::HashMap;

use halo_config::Balance;

use super::{Balancer, Candidate, mix64};

fn servers(weights: &[u32]) -> Vec<Candidate> {
    weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| Candidate {
            index,
            weight,
            in_flight: 0,
            id_hash: mix64(index as u64 + 1000),
        })
        .collect()
}

fn counts(b: &Balancer, c: &[Candidate], picks: usize) -> Vec<usize> {
    let mut n = vec![0; c.iter().map(|c| c.index).max().unwrap() + 1];
    for i in 0..picks {
        n[b.pick(c, i as u64).unwrap()] += 1;
    }
    n
}

#[test]
fn round_robin_gives_exact_weighted_shares_interleaved() {
    let c = servers(&[5, 1, 1]);
    let b = Balancer::new(Balance::RoundRobin, 3, 1);
    let order: Vec<usize> = (0..7).map(|_| b.pick(&c, 0).unwrap()).collect();
    // nginx's smooth weighted round robin: a a b a c a a, not a a a a a b c.
    assert_eq!(order, [0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(counts(&b, &c, 7000), [5000, 1000, 1000]);
}

#[test]
fn round_robin_equal_weights_alternate() {
    let c = servers(&[1, 1]);
    let b = Balancer::new(Balance::RoundRobin, 2, 1);
    let order: Vec<usize> = (0..6).map(|_| b.pick(&c, 0).unwrap()).collect();
    assert_eq!(order, [0, 1, 0, 1, 0, 1]);
}

#[test]
fn least_conn_prefers_fewest_in_flight_per_weight() {
    let mut c = servers(&[1, 1, 2]);
    c[0].in_flight = 3;
    c[1].in_flight = 1;
    c[2].in_flight = 3; // 1.5 per weight
    let b = Balancer::new(Balance::LeastConn, 3, 1);
    assert_eq!(b.pick(&c, 0), Some(1));
    c[1].in_flight = 2; // 2.0 per weight now
    assert_eq!(b.pick(&c, 0), Some(2));
    // Ties spread over the tied servers.
    let idle = servers(&[1, 1, 1]);
    let n = counts(&b, &idle, 3000);
    assert!(n.iter().all(|&k| k > 800), "{n:?}");
}

#[test]
fn source_is_sticky_and_only_a_removed_servers_clients_move() {
    let all = servers(&[1, 1, 1, 1]);
    let b = Balancer::new(Balance::Source, 4, 1);
    let clients: Vec<u64> = (0..4000u64).map(|i| mix64(i * 7 + 3)).collect();
    let before: Vec<usize> = clients.iter().map(|&h| b.pick(&all, h).unwrap()).collect();
    // Sticky: the same client gets the same server every time.
    assert!(
        clients
            .iter()
            .zip(&before)
            .all(|(&h, &s)| b.pick(&all, h) == Some(s))
    );
    // Spread roughly evenly.
    let mut per = HashMap::new();
    for s in &before {
        *per.entry(s).or_insert(0) += 1;
    }
    assert!(per.values().all(|&n| (800..1200).contains(&n)), "{per:?}");

    // Server 2 dies: its clients move, nobody else's does.
    let without: Vec<_> = all.iter().copied().filter(|c| c.index != 2).collect();
    for (&h, &s) in clients.iter().zip(&before) {
        let now = b.pick(&without, h).unwrap();
        if s == 2 {
            assert_ne!(now, 2);
        } else {
            assert_eq!(now, s, "a client of a live server moved");
        }
    }
    // It comes back: everyone is where they were.
    assert!(
        clients
            .iter()
            .zip(&before)
            .all(|(&h, &s)| b.pick(&all, h) == Some(s))
    );
}

#[test]
fn source_respects_weights() {
    let c = servers(&[1, 3]);
    let b = Balancer::new(Balance::Source, 2, 1);
    let n = (0..8000u64).fold([0usize; 2], |mut n, i| {
        n[b.pick(&c, mix64(i)).unwrap()] += 1;
        n
    });
    assert!((1700..2300).contains(&n[0]), "{n:?}");
}

#[test]
fn random_two_avoids_the_busy_server_and_respects_weights() {
    let mut c = servers(&[1, 1]);
    c[0].in_flight = 50;
    let b = Balancer::new(Balance::RandomTwo, 2, 42);
    let n = counts(&b, &c, 4000);
    // Server 0 wins only when both draws land on it: about a quarter.
    assert!((800..1200).contains(&n[0]), "{n:?}");
    let w = servers(&[1, 4]);
    let n = counts(&b, &w, 5000);
    assert!(n[1] > n[0] * 4, "{n:?}");
}

#[test]
fn first_takes_the_first_candidate() {
    let c = servers(&[1, 1, 1]);
    let b = Balancer::new(Balance::First, 3, 1);
    assert_eq!(counts(&b, &c, 100), [100, 0, 0]);
    assert_eq!(b.pick(&c[1..], 0), Some(1));
}

#[test]
fn no_candidates_no_pick() {
    for algo in [
        Balance::RoundRobin,
        Balance::LeastConn,
        Balance::Source,
        Balance::RandomTwo,
        Balance::First,
    ] {
        assert_eq!(Balancer::new(algo, 0, 1).pick(&[], 0), None);
    }
}
