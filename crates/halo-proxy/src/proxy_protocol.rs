//! PROXY protocol headers sent to servers (`send_proxy`), so they see the real
//! client address: v1 (text) and v2 (binary), as in HAProxy's proxy-protocol.txt.

use std::net::{IpAddr, SocketAddr};

use halo_config::SendProxy;

/// v2's 12-byte signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header announcing a connection from `client` to `local` (the address the
/// client connected to), or nothing for [`SendProxy::Off`].
#[must_use]
pub fn header(version: SendProxy, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        SendProxy::Off => Vec::new(),
        SendProxy::V1 => {
            let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                client.ip(),
                local.ip(),
                client.port(),
                local.port()
            )
            .into_bytes()
        }
        SendProxy::V2 => {
            let mut out = Vec::with_capacity(16 + 36);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21); // version 2, command PROXY
            match (client.ip(), local.ip()) {
                (IpAddr::V4(c), IpAddr::V4(l)) => {
                    out.push(0x11); // AF_INET, STREAM
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&c.octets());
                    out.extend_from_slice(&l.octets());
                }
                (c, l) => {
                    out.push(0x21); // AF_INET6, STREAM
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&to_v6(c).octets());
                    out.extend_from_slice(&to_v6(l).octets());
                }
            }
            out.extend_from_slice(&client.port().to_be_bytes());
            out.extend_from_slice(&local.port().to_be_bytes());
            out
        }
    }
}

/// Both addresses in one family: IPv4-mapped IPv6 becomes IPv4 when both are
/// IPv4 at heart; otherwise IPv4 is mapped into IPv6.
fn same_family(client: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
    let unmap = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
        IpAddr::V4(_) => a,
    };
    let (c, l) = (unmap(client), unmap(local));
    if c.is_ipv4() == l.is_ipv4() {
        (c, l)
    } else {
        (
            SocketAddr::new(IpAddr::V6(to_v6(c.ip())), c.port()),
            SocketAddr::new(IpAddr::V6(to_v6(l.ip())), l.port()),
        )
    }
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_text_for_both_families() {
        assert_eq!(
            header(SendProxy::V1, a("198.51.100.7:5555"), a("192.0.2.20:80")),
            b"PROXY TCP4 198.51.100.7 192.0.2.20 5555 80\r\n"
        );
        assert_eq!(
            header(
                SendProxy::V1,
                a("[2001:db8::7]:5555"),
                a("[2001:db8::20]:443")
            ),
            b"PROXY TCP6 2001:db8::7 2001:db8::20 5555 443\r\n"
        );
        // A v4-mapped client on a dual-stack socket is announced as IPv4.
        assert_eq!(
            header(
                SendProxy::V1,
                a("[::ffff:198.51.100.7]:1"),
                a("192.0.2.20:80")
            ),
            b"PROXY TCP4 198.51.100.7 192.0.2.20 1 80\r\n"
        );
    }

    #[test]
    fn v2_binary_layout() {
        let h = header(SendProxy::V2, a("198.51.100.7:5555"), a("192.0.2.20:80"));
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 7, 192, 0, 2, 20, 0x15, 0xB3, 0, 80,
        ]);
        assert_eq!(h, want);
        let h6 = header(SendProxy::V2, a("[2001:db8::7]:1"), a("192.0.2.20:80"));
        assert_eq!(
            (h6[13], u16::from_be_bytes([h6[14], h6[15]]), h6.len()),
            (0x21, 36, 16 + 36)
        );
    }

    #[test]
    fn off_sends_nothing() {
        assert!(header(SendProxy::Off, a("198.51.100.7:1"), a("192.0.2.20:80")).is_empty());
    }
}
