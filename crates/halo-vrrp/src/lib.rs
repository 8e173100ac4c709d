//! VRRP for halo's virtual-IP tier, without I/O: the advertisement codec
//! ([`packet`]) and the RFC 9568 state machine ([`machine`]). Time comes in
//! as `now`; sockets, netlink and ARP live in the binary's I/O layer.

#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod fuzzing;
pub mod machine;
pub mod packet;

pub use machine::{Action, Input, Router, Settings, State};
pub use packet::{Advert, ChecksumForm, Decoded, Version};
