//! An interface as VRRP needs it: index, MAC, primary IPv4 address and IPv6
//! link-local address (the sources of multicast advertisements).

use std::net::{Ipv4Addr, Ipv6Addr};

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
}

impl Interface {
    /// Reads `name`; addresses in `skip` (our own virtual addresses, left
    /// over or held) are never taken as the primary.
    ///
    /// # Errors
    /// [`Error::Interface`] when there is no such interface.
    pub fn lookup(name: &str, skip: &[std::net::IpAddr]) -> Result<Self, Error> {
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
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let ip = v6.ip();
                if iface.ipv6_link_local.is_none() && ip.is_unicast_link_local() {
                    iface.ipv6_link_local = Some(ip);
                }
            }
        }
        Ok(iface)
    }
}
