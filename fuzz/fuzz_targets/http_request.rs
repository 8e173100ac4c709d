//! Coverage-guided fuzzing of `halo_proxy::fuzzing::request_head` (see its docs for the property
//! checked besides not panicking). Run by `scripts/test` for
//! `FUZZ_SECONDS` (30 by default); longer:
//!
//!     cd fuzz && cargo fuzz run http_request -s none -- -max_total_time=600
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    halo_proxy::fuzzing::request_head(data);
});
