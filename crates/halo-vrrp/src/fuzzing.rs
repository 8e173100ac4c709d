//! VRRP packets as a fuzz target: any bytes from any source are decoded or
//! dropped with a reason, never a panic, and a decoded advertisement written
//! again by halo decodes to itself. Each input is tried as sent and with its
//! checksum made right (both forms), so the fuzzer reaches past the
//! checksum. Used by `fuzz/fuzz_targets/vrrp.rs` and the `fuzz_parsers` test.
//! Not part of halo's API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{self, ChecksumForm, Version};

const V4: (IpAddr, IpAddr) = (
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
);
const V6: (IpAddr, IpAddr) = (
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
);

/// One received VRRP message.
///
/// # Panics
/// When a decoded advertisement does not survive being written again.
pub fn packet(data: &[u8]) {
    for (src, dst) in [V4, V6] {
        let mut fixed = data.to_vec();
        let forms: &[ChecksumForm] = if src.is_ipv4() {
            &[ChecksumForm::PseudoHeader, ChecksumForm::MessageOnly]
        } else {
            &[ChecksumForm::PseudoHeader]
        };
        round_trip(data, src, dst);
        for &form in forms {
            if packet::fix_checksum(&mut fixed, src, dst, form) {
                round_trip(&fixed, src, dst);
            }
        }
    }
}

fn round_trip(msg: &[u8], src: IpAddr, dst: IpAddr) {
    let Ok(d) = packet::decode(msg, src, dst) else {
        return;
    };
    assert!(
        d.advert
            .addresses
            .iter()
            .all(|a| a.is_ipv4() == src.is_ipv4())
    );
    let form = d.form.unwrap_or(ChecksumForm::PseudoHeader);
    let mut out = Vec::new();
    packet::encode(&d.advert, src, dst, form, &mut out);
    let back = packet::decode(&out, src, dst).expect("halo's own advertisement decodes");
    assert_eq!(back.advert, d.advert);
}

/// Valid advertisements to start mutating from.
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (version, (src, dst), addresses) in [
        (Version::V3, V4, vec![IpAddr::from([192, 0, 2, 20])]),
        (
            Version::V3,
            V6,
            vec![IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20,
            ))],
        ),
        (
            Version::V2,
            V4,
            vec![IpAddr::from([192, 0, 2, 20]), IpAddr::from([192, 0, 2, 21])],
        ),
    ] {
        let advert = packet::Advert {
            version,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addresses,
        };
        let mut msg = Vec::new();
        packet::encode(&advert, src, dst, ChecksumForm::PseudoHeader, &mut msg);
        out.push(msg);
    }
    out
}
