//! Telling the link who holds an address now: gratuitous ARP for IPv4
//! (RFC 5227 §3 announcement, the request form keepalived sends) and an
//! unsolicited neighbour advertisement for IPv6 (RFC 4861 §7.2.6).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

use crate::{Error, Interface};

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;
/// ff02::1, all nodes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Sends announcements for one interface.
#[derive(Debug)]
pub struct Announcer {
    iface: Interface,
    arp: Option<Socket>,
    na: Option<Socket>,
    /// Whether IPv6 forwarding is on for the interface: the NA's Router flag.
    router: bool,
}

impl Announcer {
    /// Opens the socket for `v6` or IPv4 announcements on `iface`.
    /// Needs CAP_NET_RAW.
    ///
    /// # Errors
    /// [`Error::Io`] naming the call that failed.
    pub fn open(iface: &Interface, v6: bool) -> Result<Self, Error> {
        let (mut arp, mut na) = (None, None);
        if v6 {
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
                .map_err(Error::io("ICMPv6 raw socket"))?;
            // RFC 4861 §7.1.2: a receiver drops NAs with a hop limit below 255.
            s.set_multicast_hops_v6(255)
                .map_err(Error::io("IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_if_v6(iface.index)
                .map_err(Error::io("IPV6_MULTICAST_IF"))?;
            s.set_multicast_loop_v6(false)
                .map_err(Error::io("IPV6_MULTICAST_LOOP"))?;
            s.bind_device(Some(iface.name.as_bytes()))
                .map_err(Error::io("SO_BINDTODEVICE"))?;
            na = Some(s);
        } else {
            // Protocol 0: the socket sends only and receives nothing.
            arp = Some(
                Socket::new(Domain::PACKET, Type::DGRAM, None)
                    .map_err(Error::io("AF_PACKET socket"))?,
            );
        }
        let router =
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{}/forwarding", iface.name))
                .is_ok_and(|s| s.trim() == "1");
        Ok(Self {
            iface: iface.clone(),
            arp,
            na,
            router,
        })
    }

    /// One announcement for each of `addrs` (of the family opened for).
    ///
    /// # Errors
    /// The first send that failed.
    pub fn announce(&self, addrs: &[IpAddr]) -> io::Result<()> {
        for a in addrs {
            match (a, &self.arp, &self.na) {
                (IpAddr::V4(ip), Some(s), _) => {
                    let frame = garp(self.iface.mac, *ip);
                    s.send_to(&frame, &link_broadcast(self.iface.index))?;
                }
                (IpAddr::V6(ip), _, Some(s)) => {
                    let msg = unsolicited_na(self.iface.mac, *ip, self.router);
                    let to = SocketAddrV6::new(ALL_NODES, 0, 0, self.iface.index);
                    s.send_to(&msg, &to.into())?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// ARP request announcing `ip` at `mac`: sender and target address both
/// `ip`, target hardware address broadcast (as keepalived sends it).
fn garp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut f = [0u8; 28];
    f[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[4] = 6;
    f[5] = 4;
    f[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    f[8..14].copy_from_slice(&mac);
    f[14..18].copy_from_slice(&ip.octets());
    f[18..24].copy_from_slice(&[0xff; 6]);
    f[24..28].copy_from_slice(&ip.octets());
    f
}

/// Neighbour advertisement for `target` with its link-layer address option;
/// Override set, Solicited clear. The kernel fills in the checksum.
fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr, router: bool) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136;
    m[4] = 0x20 | if router { 0x80 } else { 0 };
    m[8..24].copy_from_slice(&target.octets());
    m[24] = 2; // target link-layer address
    m[25] = 1; // 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}

/// `sockaddr_ll` for the Ethernet broadcast address on interface `index`.
fn link_broadcast(index: u32) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: sockaddr_storage is larger than sockaddr_ll and aligned for
    // it, and all zeros is a valid sockaddr_ll.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = u16::try_from(libc::AF_PACKET).unwrap_or_default();
    ll.sll_protocol = ETH_P_ARP.to_be();
    ll.sll_ifindex = i32::try_from(index).unwrap_or_default();
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let len = u32::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or_default();
    #[allow(unsafe_code)]
    // SAFETY: the storage holds an initialised sockaddr_ll of `len` bytes.
    unsafe {
        SockAddr::new(storage, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_is_the_request_keepalived_sends() {
        // research/vrrp.md §6: op 1, sha = NIC MAC, spa = tpa = VIP, tha = broadcast.
        let f = garp([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(
            f,
            [
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 0, 2, 100, 255, 255, 255, 255, 255,
                255, 192, 0, 2, 100
            ]
        );
    }

    #[test]
    fn na_sets_override_and_carries_the_mac() {
        let m = unsolicited_na([2, 0, 0, 0, 0, 1], "2001:db8::100".parse().unwrap(), false);
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(&m[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
    }
}
