//! An interface as VRRP needs it: index, MAC, primary IPv4 address and IPv6
//! link-local address (the sources of multicast advertisements).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::if_nametoindex;

use crate::Error;

/// One network interface, read when the instance starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name, e.g. `eth0`.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Hardware address (zero for interfaces without one).
    pub mac: [u8; 6],
    /// First IPv4 address that is not one of `skip` (the primary).
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 link-local address.
    pub ipv6_link_local: Option<Ipv6Addr>,
    /// Every address on the interface but `skip` (our virtual addresses)
    /// with its prefix length: the networks it is directly on.
    pub networks: Vec<(IpAddr, u8)>,
}

impl Interface {
    /// Reads `name`; addresses in `skip` (our own virtual addresses, left
    /// over or held) are never taken as the primary.
    ///
    /// # Errors
    /// [`Error::Interface`] when there is no such interface.
    pub fn lookup(name: &str, skip: &[IpAddr]) -> Result<Self, Error> {
        let index = if_nametoindex(name).map_err(|e| Error::Interface {
            name: name.to_owned(),
            why: format!("not found ({e})"),
        })?;
        let mut iface = Interface {
            name: name.to_owned(),
            index,
            mac: [0; 6],
            ipv4: None,
            ipv6_link_local: None,
            networks: Vec::new(),
        };
        let all = getifaddrs().map_err(|e| Error::Io {
            what: "getifaddrs",
            source: e.into(),
        })?;
        for a in all.filter(|a| a.interface_name == name) {
            let Some(addr) = a.address else { continue };
            if let Some(link) = addr.as_link_addr() {
                if let Some(mac) = link.addr() {
                    iface.mac = mac;
                }
            } else if let Some(v4) = addr.as_sockaddr_in() {
                let ip = v4.ip();
                if iface.ipv4.is_none() && !skip.contains(&ip.into()) {
                    iface.ipv4 = Some(ip);
                }
                let bits = a
                    .netmask
                    .and_then(|m| m.as_sockaddr_in().map(|m| m.ip().to_bits().count_ones()));
                // (Not our virtual addresses: their prefixes may be wider.)
                if !skip.contains(&ip.into()) {
                    let bits = u8::try_from(bits.unwrap_or(32)).unwrap_or(32);
                    iface.networks.push((ip.into(), bits));
                }
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let ip = v6.ip();
                if iface.ipv6_link_local.is_none() && ip.is_unicast_link_local() {
                    iface.ipv6_link_local = Some(ip);
                }
                let bits = a
                    .netmask
                    .and_then(|m| m.as_sockaddr_in6().map(|m| m.ip().to_bits().count_ones()));
                // (Not our virtual addresses: their prefixes may be wider.)
                if !skip.contains(&ip.into()) {
                    let bits = u8::try_from(bits.unwrap_or(128)).unwrap_or(128);
                    iface.networks.push((ip.into(), bits));
                }
            }
        }
        Ok(iface)
    }
}

impl Interface {
    /// Whether `peer` is directly on this interface's link: inside the
    /// network of one of its addresses, or an IPv6 link-local address.
    /// Packets from such a peer are not routed, so they arrive with the TTL
    /// or hop limit they were sent with.
    #[must_use]
    pub fn on_link(&self, peer: IpAddr) -> bool {
        on_link(&self.networks, peer)
    }
}

fn on_link(networks: &[(IpAddr, u8)], peer: IpAddr) -> bool {
    if let IpAddr::V6(v6) = peer
        && v6.is_unicast_link_local()
    {
        return true;
    }
    networks.iter().any(|&(net, bits)| match (net, peer) {
        (IpAddr::V4(n), IpAddr::V4(p)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            n.to_bits() & mask == p.to_bits() & mask
        }
        (IpAddr::V6(n), IpAddr::V6(p)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            n.to_bits() & mask == p.to_bits() & mask
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::on_link;

    #[test]
    fn peers_inside_an_interface_network_are_on_link() {
        let nets = [
            ("192.0.2.18".parse().unwrap(), 24),
            ("2001:db8::18".parse().unwrap(), 64),
            ("198.51.100.7".parse().unwrap(), 32),
        ];
        for (peer, on) in [
            ("192.0.2.19", true),
            ("192.0.2.255", true),
            ("192.0.3.19", false),
            ("198.51.100.7", true),
            ("198.51.100.8", false),
            ("2001:db8::19", true),
            ("2001:db8:1::19", false),
            ("fe80::1", true),
        ] {
            assert_eq!(on_link(&nets, peer.parse().unwrap()), on, "{peer}");
        }
        assert!(!on_link(
            &[("0.0.0.0".parse().unwrap(), 0)][..0],
            "192.0.2.1".parse().unwrap()
        ));
        assert!(on_link(
            &[("0.0.0.0".parse().unwrap(), 0)],
            "192.0.2.1".parse().unwrap()
        ));
    }
}
