//! Coverage-guided fuzzing of `halo_admin::fuzzing::body` (see its docs for the property
//! checked besides not panicking). Run by `scripts/test` for
//! `FUZZ_SECONDS` (30 by default); longer:
//!
//!     cd fuzz && cargo fuzz run admin_body -s none -- -max_total_time=600
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    halo_admin::fuzzing::body(data);
});
