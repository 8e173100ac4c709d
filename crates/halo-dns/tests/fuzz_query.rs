//! The query path under mutated input, run by every `cargo test`: valid
//! queries of every kind (`halo_dns::fuzzing::seeds`), each cut at every
//! length and then mutated many times (bit flips, random bytes, inserted,
//! removed and repeated runs, header counts set high). Every result goes
//! through `halo_dns::fuzzing::check`: the same `Answerer` the sockets use,
//! which must not panic and must produce a well-formed reply or none.
//!
//! Coverage-guided fuzzing of the same check: `fuzz/` (cargo fuzz), run by
//! `.ci/run` for a short time.

use halo_dns::fuzzing::{check, seeds};

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

#[test]
fn every_prefix_of_every_seed() {
    for seed in seeds() {
        for cut in 0..=seed.len() {
            check(&seed[..cut]);
        }
    }
}

#[test]
fn mutated_queries() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds = seeds();
    // About 500,000 messages: a few seconds in a debug build.
    for round in 0..1000 {
        for seed in &seeds {
            let mut msg = seed.clone();
            for _ in 0..=(round % 4) {
                mutate(&mut rng, &mut msg);
            }
            check(&msg);
        }
    }
}
