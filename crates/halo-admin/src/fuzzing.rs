//! The admin API's request bodies as a fuzz target: any bytes are a
//! [`ServerChange`] or a 400, never a panic, and an accepted change written
//! back as JSON reads the same. Used by `fuzz/fuzz_targets/admin_body.rs`
//! and the `fuzz_parsers` test. Not part of halo's API.

use crate::{ServerChange, parse_change};

/// One request body.
///
/// # Panics
/// When an accepted change does not survive a JSON round trip, or breaks
/// the rules it was checked against.
pub fn body(data: &[u8]) {
    if let Ok(change) = parse_change(data) {
        assert!(change.state.is_some() || change.weight.is_some());
        assert!(change.weight.is_none_or(|w| w <= 256));
        let json = serde_json::to_vec(&change).expect("serialises");
        let back: ServerChange = serde_json::from_slice(&json).expect("reads back");
        assert_eq!(back, change);
    }
}

/// Valid bodies to start mutating from.
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    [
        &br#"{"state":"drain"}"#[..],
        br#"{"weight": 7}"#,
        br#"{"state": "maint", "weight": 256}"#,
        br#"{"state":"ready","weight":0}"#,
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}
