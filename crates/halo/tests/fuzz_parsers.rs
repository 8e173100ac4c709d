//! Every parser of network bytes under mutated input, run by every `cargo
//! test`: valid inputs of each kind (each crate's `fuzzing::seeds`), each cut
//! at every length and then mutated many times (bit flips, random bytes,
//! inserted, removed and repeated runs, DNS section counts set high,
//! compression pointers). Every result goes through the same check the
//! coverage-guided fuzz target runs (`fuzz/fuzz_targets/`, cargo fuzz, 30 s
//! each in `scripts/test`): it must not panic, and each parser keeps its
//! property (see the `fuzzing` modules: a DNS reply is well formed, what
//! halo forwards parses to the framing it accepted, a VRRP advertisement
//! survives being written again, ...).

use halo_proxy::fuzzing as proxy;

/// xorshift64*: deterministic, so a failure here repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

fn mutate(rng: &mut Rng, msg: &mut Vec<u8>) {
    match rng.below(7) {
        0 if !msg.is_empty() => {
            let i = rng.below(msg.len());
            msg[i] ^= 1 << rng.below(8);
        }
        1 if !msg.is_empty() => {
            let i = rng.below(msg.len());
            msg[i] = rng.byte();
        }
        2 => {
            let i = rng.below(msg.len() + 1);
            for _ in 0..=rng.below(8) {
                msg.insert(i, rng.byte());
            }
        }
        3 if !msg.is_empty() => {
            let i = rng.below(msg.len());
            let n = rng.below(msg.len() - i) + 1;
            msg.drain(i..i + n);
        }
        4 if !msg.is_empty() => {
            let i = rng.below(msg.len());
            let n = (rng.below(msg.len() - i) + 1).min(64);
            let run: Vec<u8> = msg[i..i + n].to_vec();
            let at = rng.below(msg.len() + 1);
            msg.splice(at..at, run);
        }
        5 if msg.len() >= 12 => {
            // A section count (QD, AN, NS, AR) far from the truth.
            let field = 4 + 2 * rng.below(4);
            msg[field] = rng.byte();
            msg[field + 1] = rng.byte();
        }
        _ if msg.len() > 12 => {
            // A compression pointer somewhere past the header.
            let i = 12 + rng.below(msg.len() - 12);
            msg[i] = 0xC0 | (rng.byte() & 0x3F);
        }
        _ => msg.push(rng.byte()),
    }
}

/// Every prefix of every seed, then `rounds` rounds of 1 to 4 mutations of
/// each, through `check`.
fn run(seeds: &[Vec<u8>], rounds: usize, check: fn(&[u8])) {
    for seed in seeds {
        for cut in 0..=seed.len() {
            check(&seed[..cut]);
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..rounds {
        for seed in seeds {
            let mut msg = seed.clone();
            for _ in 0..=(round % 4) {
                mutate(&mut rng, &mut msg);
            }
            check(&msg);
        }
    }
}

#[test]
fn dns_queries() {
    // About 500,000 messages: a few seconds in a debug build.
    run(&halo_dns::fuzzing::seeds(), 1000, halo_dns::fuzzing::check);
}

#[test]
fn dns_peer_replies_and_notify() {
    run(
        &halo_dns::fuzzing::peer_seeds(),
        20_000,
        halo_dns::fuzzing::peer,
    );
}

#[test]
fn vrrp_packets() {
    run(
        &halo_vrrp::fuzzing::seeds(),
        50_000,
        halo_vrrp::fuzzing::packet,
    );
}

#[test]
fn http_request_heads() {
    let [requests, ..] = proxy::seeds();
    run(&requests, 20_000, proxy::request_head);
}

#[test]
fn http_response_heads() {
    let [_, responses, ..] = proxy::seeds();
    run(&responses, 20_000, proxy::response_head);
}

#[test]
fn chunked_bodies() {
    let [_, _, chunks, ..] = proxy::seeds();
    run(&chunks, 20_000, proxy::chunked);
}

#[test]
fn tls_client_hellos() {
    let [_, _, _, hellos, _] = proxy::seeds();
    run(&hellos, 20_000, proxy::client_hello);
}

#[test]
fn proxy_protocol_headers() {
    let [.., proxies] = proxy::seeds();
    run(&proxies, 20_000, proxy::proxy_header);
}

#[test]
fn admin_api_bodies() {
    run(
        &halo_admin::fuzzing::seeds(),
        20_000,
        halo_admin::fuzzing::body,
    );
}

/// Writes every target's seeds to `fuzz/seeds/<target>/`, the corpus
/// `scripts/test` starts cargo fuzz from: run after changing a seed list,
/// and commit the files.
///
///     cargo test -p halo --test fuzz_parsers -- --ignored write_seed_corpus
#[test]
#[ignore = "writes files into the source tree"]
fn write_seed_corpus() {
    let [requests, responses, chunks, hellos, proxies] = proxy::seeds();
    let targets = [
        ("query", halo_dns::fuzzing::seeds()),
        ("dns_peer", halo_dns::fuzzing::peer_seeds()),
        ("vrrp", halo_vrrp::fuzzing::seeds()),
        ("http_request", requests),
        ("http_response", responses),
        ("chunked", chunks),
        ("client_hello", hellos),
        ("proxy_header", proxies),
        ("admin_body", halo_admin::fuzzing::seeds()),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    for (target, seeds) in targets {
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed).unwrap();
        }
    }
}
