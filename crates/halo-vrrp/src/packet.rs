//! The VRRP advertisement on the wire (IP protocol 112): version 3 (RFC 9568,
//! IPv4 and IPv6) and version 2 (RFC 3768, keepalived's default).
//!
//! The IPv4 checksum of version 3 comes in two forms: over an IPv4
//! pseudo-header and the message (RFC 5798 as keepalived, tcpdump and
//! Wireshark read it) or over the message only (RFC 9568 §5.2.8, Cisco,
//! Juniper). [`encode`] writes the form asked for; [`decode`] accepts either
//! and says which it saw.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// IPv4 multicast group of VRRP.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit every advertisement is sent with and must arrive with.
pub const TTL: u8 = 255;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, 8 bytes of auth data.
    V2,
    /// RFC 9568: interval in centiseconds, IPv4 or IPv6.
    V3,
}

/// How a version 3 IPv4 checksum is computed (IPv6 always has a pseudo-header,
/// version 2 never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumForm {
    /// Over an IPv4 pseudo-header and the message: keepalived's form.
    PseudoHeader,
    /// Over the message only: RFC 9568's form.
    MessageOnly,
}

/// One advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// 255 = address owner, 1..=254 backup, 0 = master leaving.
    pub priority: u8,
    /// Advertisement interval in centiseconds (version 2: whole seconds × 100).
    pub interval_cs: u16,
    /// The virtual addresses, all of one family.
    pub addresses: Vec<IpAddr>,
}

/// Why a received packet is dropped. Each has a counter in the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Drop {
    /// Shorter than the header, or than the addresses it announces.
    #[error("bad length")]
    Length,
    /// Not version 2 or 3 (or version 2 over IPv6).
    #[error("unknown version")]
    Version,
    /// Not an ADVERTISEMENT (type 1).
    #[error("unknown type")]
    Type,
    /// The checksum matches neither accepted form.
    #[error("bad checksum")]
    Checksum,
    /// Version 2 with authentication (halo speaks none: RFC 3768 removed it).
    #[error("authentication not supported")]
    Auth,
    /// An advertisement interval of 0 or no addresses (version 3).
    #[error("invalid field")]
    Field,
    /// Addresses of another family than the packet's source.
    #[error("address family mismatch")]
    Family,
}

/// An advertisement as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub advert: Advert,
    /// For version 3 over IPv4: the checksum form the sender used.
    pub form: Option<ChecksumForm>,
}

/// Writes `advert`, sent from `src` to `dst` (both of the addresses' family),
/// into `out` (cleared first).
///
/// The caller keeps `advert` consistent (version 2: IPv4 only, interval a
/// whole number of seconds up to 255); out-of-range values are clamped.
pub fn encode(advert: &Advert, src: IpAddr, dst: IpAddr, form: ChecksumForm, out: &mut Vec<u8>) {
    out.clear();
    let count = u8::try_from(advert.addresses.len()).unwrap_or(u8::MAX);
    match advert.version {
        Version::V3 => {
            out.extend_from_slice(&[0x31, advert.vrid, advert.priority, count]);
            out.extend_from_slice(&(advert.interval_cs.clamp(1, 0x0FFF)).to_be_bytes());
        }
        Version::V2 => {
            let secs = u8::try_from((advert.interval_cs / 100).max(1)).unwrap_or(u8::MAX);
            out.extend_from_slice(&[0x21, advert.vrid, advert.priority, count, 0, secs]);
        }
    }
    out.extend_from_slice(&[0, 0]);
    for a in advert.addresses.iter().take(usize::from(count)) {
        match a {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }
    if advert.version == Version::V2 {
        out.extend_from_slice(&[0; 8]);
    }
    let sum = match (advert.version, src, dst) {
        (Version::V3, IpAddr::V4(s), IpAddr::V4(d)) if form == ChecksumForm::PseudoHeader => {
            checksum(&pseudo_v4(s, d, out.len()), out)
        }
        (Version::V3, IpAddr::V6(s), IpAddr::V6(d)) => checksum(&pseudo_v6(s, d, out.len()), out),
        _ => checksum(&[], out),
    };
    out[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// Sets the checksum of `msg` (at least 8 bytes) for `form`; false when it
/// is too short. For the fuzz target, which must get past the checksum.
pub(crate) fn fix_checksum(msg: &mut [u8], src: IpAddr, dst: IpAddr, form: ChecksumForm) -> bool {
    if msg.len() < 8 {
        return false;
    }
    msg[6..8].copy_from_slice(&[0, 0]);
    let sum = match (msg[0] >> 4, src, dst) {
        (3, IpAddr::V4(s), IpAddr::V4(d)) if form == ChecksumForm::PseudoHeader => {
            checksum(&pseudo_v4(s, d, msg.len()), msg)
        }
        (3, IpAddr::V6(s), IpAddr::V6(d)) => checksum(&pseudo_v6(s, d, msg.len()), msg),
        _ => checksum(&[], msg),
    };
    msg[6..8].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Parses and checks the VRRP message of an IP packet from `src` to `dst`.
/// TTL, VRID and (unicast) source checks belong to the caller.
///
/// # Errors
/// A [`Drop`] reason; the packet is then ignored.
pub fn decode(msg: &[u8], src: IpAddr, dst: IpAddr) -> Result<Decoded, Drop> {
    if msg.len() < 8 {
        return Err(Drop::Length);
    }
    let version = match (msg[0] >> 4, src) {
        (3, _) => Version::V3,
        (2, IpAddr::V4(_)) => Version::V2,
        _ => return Err(Drop::Version),
    };
    if msg[0] & 0x0F != 1 {
        return Err(Drop::Type);
    }
    let count = usize::from(msg[3]);
    let width = if src.is_ipv4() { 4 } else { 16 };
    let want = 8 + count * width + if version == Version::V2 { 8 } else { 0 };
    if msg.len() != want {
        return Err(Drop::Length);
    }
    let form = match (version, src, dst) {
        (Version::V2, _, _) => {
            if checksum(&[], msg) != 0 {
                return Err(Drop::Checksum);
            }
            None
        }
        (Version::V3, IpAddr::V4(s), IpAddr::V4(d)) => {
            if checksum(&pseudo_v4(s, d, msg.len()), msg) == 0 {
                Some(ChecksumForm::PseudoHeader)
            } else if checksum(&[], msg) == 0 {
                Some(ChecksumForm::MessageOnly)
            } else {
                return Err(Drop::Checksum);
            }
        }
        (Version::V3, IpAddr::V6(s), IpAddr::V6(d)) => {
            if checksum(&pseudo_v6(s, d, msg.len()), msg) != 0 {
                return Err(Drop::Checksum);
            }
            None
        }
        _ => return Err(Drop::Family),
    };
    let interval_cs = match version {
        Version::V3 => u16::from_be_bytes([msg[4], msg[5]]) & 0x0FFF,
        Version::V2 => {
            if msg[4] != 0 {
                return Err(Drop::Auth);
            }
            u16::from(msg[5]) * 100
        }
    };
    if interval_cs == 0 || (version == Version::V3 && count == 0) {
        return Err(Drop::Field);
    }
    let addresses = msg[8..8 + count * width]
        .chunks_exact(width)
        .map(|c| match <[u8; 16]>::try_from(c) {
            Ok(b) => IpAddr::from(b),
            Err(_) => IpAddr::from([c[0], c[1], c[2], c[3]]),
        })
        .collect();
    Ok(Decoded {
        advert: Advert {
            version,
            vrid: msg[1],
            priority: msg[2],
            interval_cs,
            addresses,
        },
        form,
    })
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> [u8; 12] {
    let mut p = [0; 12];
    p[..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = PROTOCOL;
    p[10..].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    p
}

fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> [u8; 40] {
    let mut p = [0; 40];
    p[..16].copy_from_slice(&src.octets());
    p[16..32].copy_from_slice(&dst.octets());
    p[32..36].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    p[39] = PROTOCOL;
    p
}

/// The Internet checksum (RFC 1071) of `pseudo` followed by `msg`: written
/// into a zeroed field it makes the sum verify; over a message that carries
/// a correct one it is 0.
fn checksum(pseudo: &[u8], msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for part in [pseudo, msg] {
        // Both parts have even length except possibly the message's end.
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn advert(version: Version, addresses: &[&str]) -> Advert {
        Advert {
            version,
            vrid: 51,
            priority: 150,
            interval_cs: 100,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    /// A VRRPv3 advert as keepalived 2.2 sends it (vrid 51, priority 150,
    /// 1 s, one VIP 192.0.2.100, from 192.0.2.1 to 224.0.0.18): 12 bytes,
    /// checksum over the IPv4 pseudo-header. Worked by hand from RFC 1071:
    /// pseudo-header words c000 0201 e000 0012 0070 000c, message words
    /// 3133 9601 0064 0000 c000 0264.
    #[test]
    fn v3_ipv4_matches_keepalived_layout() {
        let mut out = Vec::new();
        let a = advert(Version::V3, &["192.0.2.100"]);
        encode(
            &a,
            v4("192.0.2.1"),
            v4("224.0.0.18"),
            ChecksumForm::PseudoHeader,
            &mut out,
        );
        assert_eq!(&out[..6], &[0x31, 51, 150, 1, 0x00, 0x64]);
        assert_eq!(&out[8..], &[192, 0, 2, 100]);
        let words: u32 = [
            0xc000u32, 0x0201, 0xe000, 0x0012, 0x0070, 0x000c, 0x3133, 0x9601, 0x0064, 0xc000,
            0x0264,
        ]
        .iter()
        .sum();
        let folded = (words & 0xFFFF) + (words >> 16);
        let folded = (folded & 0xFFFF) + (folded >> 16);
        assert_eq!(
            u16::from_be_bytes([out[6], out[7]]),
            !u16::try_from(folded).unwrap()
        );
        let d = decode(&out, v4("192.0.2.1"), v4("224.0.0.18")).unwrap();
        assert_eq!(d.advert, a);
        assert_eq!(d.form, Some(ChecksumForm::PseudoHeader));
    }

    #[test]
    fn both_ipv4_checksum_forms_are_accepted_and_told_apart() {
        let a = advert(Version::V3, &["192.0.2.100", "192.0.2.101"]);
        let (s, d) = (v4("192.0.2.1"), v4("192.0.2.2"));
        for form in [ChecksumForm::PseudoHeader, ChecksumForm::MessageOnly] {
            let mut out = Vec::new();
            encode(&a, s, d, form, &mut out);
            let got = decode(&out, s, d).unwrap();
            assert_eq!(got.form, Some(form));
            assert_eq!(got.advert, a);
        }
        // The pseudo-header form depends on the destination (unicast peers
        // each get their own); to another destination it does not verify,
        // unless by chance as message-only, which it is not here.
        let mut out = Vec::new();
        encode(&a, s, d, ChecksumForm::PseudoHeader, &mut out);
        assert_eq!(decode(&out, s, v4("192.0.2.3")), Err(Drop::Checksum));
    }

    #[test]
    fn v3_ipv6_and_v2_round_trip() {
        let a6 = advert(Version::V3, &["2001:db8::100"]);
        let (s6, g6) = (v4("fe80::1"), IpAddr::V6(GROUP_V6));
        let mut out = Vec::new();
        encode(&a6, s6, g6, ChecksumForm::PseudoHeader, &mut out);
        assert_eq!(out.len(), 8 + 16);
        assert_eq!(decode(&out, s6, g6).unwrap().advert, a6);

        let a2 = advert(Version::V2, &["192.0.2.100"]);
        encode(
            &a2,
            v4("192.0.2.1"),
            IpAddr::V4(GROUP_V4),
            ChecksumForm::PseudoHeader,
            &mut out,
        );
        assert_eq!(out.len(), 20, "8 header + 4 address + 8 auth data");
        assert_eq!(&out[..6], &[0x21, 51, 150, 1, 0, 1]);
        let got = decode(&out, v4("192.0.2.1"), IpAddr::V4(GROUP_V4)).unwrap();
        assert_eq!(got.advert, a2);
        assert_eq!(got.form, None);
    }

    #[test]
    fn malformed_packets_are_dropped_with_a_reason() {
        let (s, d) = (v4("192.0.2.1"), IpAddr::V4(GROUP_V4));
        let mut good = Vec::new();
        encode(
            &advert(Version::V3, &["192.0.2.100"]),
            s,
            d,
            ChecksumForm::PseudoHeader,
            &mut good,
        );
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut m = good.clone();
            f(&mut m);
            decode(&m, s, d)
        };
        assert_eq!(bad(&|m| m.truncate(7)), Err(Drop::Length));
        assert_eq!(bad(&|m| m.push(0)), Err(Drop::Length));
        assert_eq!(bad(&|m| m[3] = 2), Err(Drop::Length));
        assert_eq!(bad(&|m| m[0] = 0x41), Err(Drop::Version));
        assert_eq!(bad(&|m| m[0] = 0x32), Err(Drop::Type));
        assert_eq!(bad(&|m| m[2] ^= 1), Err(Drop::Checksum));
        assert_eq!(
            decode(&good, v4("fe80::1"), d),
            Err(Drop::Length),
            "v6 source: 16-byte addresses"
        );
        // Every prefix and every single-bit flip: never a panic.
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], s, d).is_err());
        }
        for i in 0..good.len() * 8 {
            let mut m = good.clone();
            m[i / 8] ^= 1 << (i % 8);
            assert!(decode(&m, s, d).is_err(), "bit {i} flipped still verifies");
        }
    }

    #[test]
    fn v2_with_authentication_or_over_ipv6_is_dropped() {
        let (s, d) = (v4("192.0.2.1"), IpAddr::V4(GROUP_V4));
        let mut out = Vec::new();
        encode(
            &advert(Version::V2, &["192.0.2.100"]),
            s,
            d,
            ChecksumForm::MessageOnly,
            &mut out,
        );
        out[4] = 1; // auth type PASS
        out[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum(&[], &out);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(decode(&out, s, d), Err(Drop::Auth));
        assert_eq!(
            decode(&out, v4("fe80::1"), v4("ff02::12")),
            Err(Drop::Version)
        );
    }
}
