//! Coverage-guided fuzzing of halo's DNS query path (see
//! `halo_dns::fuzzing::check` for what is checked).
//!
//!     cargo install cargo-fuzz
//!     cd fuzz && cargo fuzz run query -s none -- -max_total_time=60
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    halo_dns::fuzzing::check(data);
});
