//! PROXY protocol, v1 (text) and v2 (binary), as in HAProxy's
//! proxy-protocol.txt: headers sent to servers (`send_proxy`), so they see the
//! real client address, and headers read from a load balancer in front of us
//! (`accept_proxy`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

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
pub(crate) fn same_family(client: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
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

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The longest v1 header, CRLF included (the spec's 107 bytes).
const V1_MAX: usize = 107;
/// The longest v2 header we accept: 16 bytes and up to 512 of addresses and TLVs.
const V2_MAX: usize = 16 + 512;

/// Why a received PROXY header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Neither the v1 nor the v2 signature.
    #[error("no PROXY protocol signature")]
    NoSignature,
    /// A v1 line that does not parse, or is too long.
    #[error("malformed PROXY v1 header")]
    BadV1,
    /// A v2 header with a bad version, command, family or length.
    #[error("malformed PROXY v2 header")]
    BadV2,
    /// The connection ended inside the header.
    #[error("connection closed inside the PROXY header")]
    Truncated,
}

/// A complete header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Its length in bytes.
    pub len: usize,
    /// (source, destination) for PROXY TCP4/TCP6; `None` for LOCAL, UNKNOWN
    /// and families other than IP (the connection's own addresses stand).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

/// Parses a header at the start of `buf`. `Ok(None)`: need more bytes.
///
/// # Errors
/// [`HeaderError`] when the bytes cannot be a valid header.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, HeaderError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'P' {
        return parse_v1(buf);
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(HeaderError::NoSignature);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    parse_v2(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Parsed>, HeaderError> {
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Err(HeaderError::NoSignature);
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(HeaderError::BadV1)
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        return Err(HeaderError::BadV1);
    }
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| HeaderError::BadV1)?;
    let mut f = line.split(' ');
    let addrs = match f.next() {
        Some("UNKNOWN") => None,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = || f.next().ok_or(HeaderError::BadV1);
            let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
            let ip = |s: &str| -> Result<IpAddr, HeaderError> {
                let ip: IpAddr = s.parse().map_err(|_| HeaderError::BadV1)?;
                if ip.is_ipv4() == (family == "TCP4") {
                    Ok(ip)
                } else {
                    Err(HeaderError::BadV1)
                }
            };
            // Ports are plain decimal: no sign, no leading zero.
            let port = |s: &str| -> Result<u16, HeaderError> {
                if s.is_empty()
                    || (s.len() > 1 && s.starts_with('0'))
                    || !s.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(HeaderError::BadV1);
                }
                s.parse().map_err(|_| HeaderError::BadV1)
            };
            let addrs = (
                SocketAddr::new(ip(src)?, port(sport)?),
                SocketAddr::new(ip(dst)?, port(dport)?),
            );
            if f.next().is_some() {
                return Err(HeaderError::BadV1);
            }
            Some(addrs)
        }
        _ => return Err(HeaderError::BadV1),
    };
    Ok(Some(Parsed {
        len: end + 2,
        addrs,
    }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Parsed>, HeaderError> {
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 || 16 + len > V2_MAX {
        return Err(HeaderError::BadV2);
    }
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    let parsed = |addrs| {
        Ok(Some(Parsed {
            len: 16 + len,
            addrs,
        }))
    };
    match ver_cmd & 0x0F {
        0 => return parsed(None), // LOCAL: the sender's own connection
        1 => {}
        _ => return Err(HeaderError::BadV2),
    }
    match family {
        0x11 if len >= 12 => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            parsed(Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )))
        }
        0x21 if len >= 36 => {
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            parsed(Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )))
        }
        0x11 | 0x21 => Err(HeaderError::BadV2),
        // UNSPEC, UDP, unix sockets: keep the connection's addresses.
        _ => parsed(None),
    }
}

/// Reads a PROXY header off the start of `stream`, consuming exactly its
/// bytes so what follows stays for the protocol behind it. The caller bounds
/// the time it may take.
///
/// # Errors
/// A malformed or truncated header, or an I/O error.
pub async fn read_header(
    stream: &mut TcpStream,
) -> std::io::Result<Option<(SocketAddr, SocketAddr)>> {
    let mut buf = [0u8; V2_MAX];
    // Peek, so nothing past the header is taken from the socket.
    let n = stream.peek(&mut buf).await?;
    if let Some(p) = parse(&buf[..n]).map_err(std::io::Error::other)? {
        stream.read_exact(&mut buf[..p.len]).await?;
        return Ok(p.addrs);
    }
    // The header arrived in pieces (rare): take what came, then one byte at
    // a time, so we never read past its end.
    stream.read_exact(&mut buf[..n]).await?;
    let mut have = n;
    loop {
        if have == buf.len() {
            return Err(std::io::Error::other(HeaderError::BadV2));
        }
        if stream.read(&mut buf[have..=have]).await? == 0 {
            return Err(std::io::Error::other(HeaderError::Truncated));
        }
        have += 1;
        if let Some(p) = parse(&buf[..have]).map_err(std::io::Error::other)? {
            return Ok(p.addrs);
        }
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
    fn received_headers_parse_or_are_refused() {
        let v1 = b"PROXY TCP4 198.51.100.7 192.0.2.20 5555 80\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(v1),
            Ok(Some(Parsed {
                len: 44,
                addrs: Some((a("198.51.100.7:5555"), a("192.0.2.20:80")))
            }))
        );
        assert_eq!(parse(&v1[..20]), Ok(None));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Some(Parsed {
                len: 15,
                addrs: None
            }))
        );
        for (client, local) in [
            ("198.51.100.7:5555", "192.0.2.20:80"),
            ("[2001:db8::7]:1", "[2001:db8::20]:443"),
        ] {
            for v in [SendProxy::V1, SendProxy::V2] {
                let h = header(v, a(client), a(local));
                assert_eq!(
                    parse(&h),
                    Ok(Some(Parsed {
                        len: h.len(),
                        addrs: Some((a(client), a(local)))
                    })),
                    "{v:?} {client}"
                );
                assert_eq!(parse(&h[..h.len() - 1]), Ok(None));
            }
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Ok(Some(Parsed {
                len: 16,
                addrs: None
            }))
        );
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 198.51.100.7 192.0.2.20 5555 80 extra\r\n",
            b"PROXY TCP4 2001:db8::1 192.0.2.20 5555 80\r\n",
            b"PROXY TCP4 198.51.100.7 192.0.2.20 05555 80\r\n",
            b"PROXY TCP4 198.51.100.7 192.0.2.20 99999 80\r\n",
            b"PROXY TCP5 x\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04abcd",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long = [b'P'; 200];
        assert!(parse(&long).is_err());
        let mut long_v1 = b"PROXY TCP4 ".to_vec();
        long_v1.extend_from_slice(&[b'1'; 120]);
        assert_eq!(parse(&long_v1), Err(HeaderError::BadV1));
    }

    #[test]
    fn off_sends_nothing() {
        assert!(header(SendProxy::Off, a("198.51.100.7:1"), a("192.0.2.20:80")).is_empty());
    }
}
