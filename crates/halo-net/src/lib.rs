//! Linux I/O for halo's virtual-IP tier: what [`halo_vrrp`]'s sans-io router
//! needs from the kernel, and the DNS tier's UDP fast path.
//!
//! - [`VrrpSocket`]: raw IP protocol 112 on one interface, IPv4 or IPv6,
//!   multicast (224.0.0.18 / ff02::12) or unicast; sends with TTL / hop limit
//!   255 and TOS 0xc0 from a chosen source, receives with the TTL and the
//!   destination so the caller can check them.
//! - [`Addresses`]: virtual addresses added and removed with rtnetlink.
//! - [`Announcer`]: gratuitous ARP (AF_PACKET) and unsolicited neighbour
//!   advertisements (ICMPv6) after a takeover.
//! - [`Interface`]: an interface's index, MAC and primary addresses.
//! - [`firewall`]: Accept_Mode false, as nftables rules dropping traffic to
//!   addresses held without it.
//! - [`UdpBatch`] and [`omit_path_mtu`]: the DNS tier's UDP datagrams taken
//!   and answered in batches, in place (`recvmmsg`/`sendmmsg`), and its
//!   sockets ignoring path MTU information (`IP_PMTUDISC_OMIT`).
//! - [`AcceptErrors`], [`is_local`], [`raise_fd_limit`]: the host's own
//!   limits as every listener meets them (failed accepts paused and logged
//!   once per spell; connect errors that are not a server's fault; the
//!   descriptor limit raised at start).
//!
//! This is the one crate of halo with `unsafe`: building a `sockaddr_ll` for
//! AF_PACKET (module `announce`), setting `IP_MTU_DISCOVER` (module `udp`),
//! which neither socket2 nor nix offer safely, and batched UDP I/O without
//! nix's copies (module `mmsg`, a measured hot path).
//!
//! [`halo_vrrp`]: https://docs.rs/halo-vrrp

#![deny(unsafe_code)]

mod addr;
mod announce;
pub mod firewall;
mod iface;
mod limits;
mod mmsg;
mod socket;
mod udp;

pub use addr::{Addresses, watch_link};
pub use announce::Announcer;
pub use iface::Interface;
pub use limits::{AcceptErrors, is_exhaustion, is_local, raise_fd_limit};
pub use mmsg::{BATCH, Datagram, SLOT, Sent, UdpBatch};
pub use socket::{Received, VrrpSocket};
pub use udp::omit_path_mtu;

/// What can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interface does not exist (or has no address of the family).
    #[error("interface {name}: {why}")]
    Interface {
        /// Interface name.
        name: String,
        /// What is missing.
        why: String,
    },
    /// A socket call failed.
    #[error("{what}: {source}")]
    Io {
        /// The call.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink {what}: {message}")]
    Netlink {
        /// The request.
        what: &'static str,
        /// The kernel's answer.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}
