//! The global DNS tier's decisions, without I/O.
//!
//! ```text
//!   halo_config::Gslb ──▶ Zone (names, records, services; fixed per config)
//!   local health  ─┐
//!   PeerTable ─────┴──▶ Snapshot (who is healthy now) ──▶ Snapshot::resolve(query)
//!                                                              │
//!                                         Response (rcode, records to write) ──▶ halo-dns
//! ```
//!
//! * [`zone`]: what names exist under the zone and what is static about them.
//! * [`select`]: the strategies (round-robin, weighted, failover, geo) over one
//!   service's endpoints.
//! * [`peers`]: what each peer last published, and when it goes stale.
//! * [`snapshot`]: the health state of every service at one moment, and the
//!   per-query resolution that halo-dns encodes.
//!
//! Nothing here reads a clock, opens a socket or draws randomness: time is a
//! `now` argument and randomness comes from a seeded [`Picker`].

#![forbid(unsafe_code)]

pub mod hold;
pub mod peers;
pub mod select;
pub mod snapshot;
pub mod verdict;
pub mod zone;

pub use hold::Holds;
pub use peers::{Family, PeerResult, PeerStatus, PeerTable};
pub use select::{Client, Picker};
pub use snapshot::{Answer, Authority, EndpointState, Query, Rcode, Response, Snapshot};
pub use zone::Zone;

/// Record type numbers used here (RFC 1035, 3596, 2782, 6891, 8482).
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Alias.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service location.
    pub const SRV: u16 = 33;
    /// EDNS0 pseudo-record.
    pub const OPT: u16 = 41;
    /// Any type (answered minimally, RFC 8482).
    pub const ANY: u16 = 255;
}
