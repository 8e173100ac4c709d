//! The raw VRRP socket (IP protocol 112) of one instance.
//!
//! One socket sends and receives. It is bound to the interface
//! (SO_BINDTODEVICE) but not to an address: a raw socket bound to an address
//! only receives packets sent *to* that address, and multicast adverts are
//! sent to the group. The source of each advert is set per packet with
//! IP_PKTINFO / IPV6_PKTINFO instead, because the VRRP checksum covers it
//! (pseudo-header) and must match what the kernel puts in the IP header.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, recvfrom, recvmsg,
    sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::{Error, Interface};

/// IP protocol number of VRRP.
const VRRP: i32 = 112;
/// RFC 5798 §5.1.1.3: sent with TTL / hop limit 255.
const TTL: u8 = 255;
/// keepalived sends with TOS / traffic class 0xc0 (network control).
const TOS: u8 = 0xc0;
/// IPv4 group of VRRP.
const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 group of VRRP.
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// A packet as received: who sent it to whom, with which TTL, and where the
/// VRRP message lies in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// IP source.
    pub src: IpAddr,
    /// IP destination (the group or our address).
    pub dst: IpAddr,
    /// TTL / hop limit it arrived with.
    pub ttl: u8,
    /// The VRRP message within the buffer given to [`VrrpSocket::recv`].
    pub payload: Range<usize>,
}

/// Raw protocol-112 socket on one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    v6: bool,
    index: u32,
}

impl VrrpSocket {
    /// Opens the socket on `iface` for IPv6 (`v6`) or IPv4; `multicast`
    /// joins the VRRP group (unicast instances leave it: they hear only
    /// packets sent to them). Needs CAP_NET_RAW.
    ///
    /// # Errors
    /// [`Error::Io`] naming the call that failed.
    pub fn open(iface: &Interface, v6: bool, multicast: bool) -> Result<Self, Error> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(VRRP))).map_err(Error::io(
            "raw socket for IP protocol 112 (needs CAP_NET_RAW)",
        ))?;
        s.bind_device(Some(iface.name.as_bytes()))
            .map_err(Error::io("SO_BINDTODEVICE"))?;
        s.set_nonblocking(true).map_err(Error::io("O_NONBLOCK"))?;
        if v6 {
            s.set_unicast_hops_v6(TTL.into())
                .map_err(Error::io("IPV6_UNICAST_HOPS"))?;
            s.set_multicast_hops_v6(TTL.into())
                .map_err(Error::io("IPV6_MULTICAST_HOPS"))?;
            s.set_tclass_v6(TOS.into())
                .map_err(Error::io("IPV6_TCLASS"))?;
            s.set_multicast_loop_v6(false)
                .map_err(Error::io("IPV6_MULTICAST_LOOP"))?;
            s.set_multicast_if_v6(iface.index)
                .map_err(Error::io("IPV6_MULTICAST_IF"))?;
            s.set_recv_hoplimit_v6(true)
                .map_err(Error::io("IPV6_RECVHOPLIMIT"))?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(|e| Error::Io {
                what: "IPV6_RECVPKTINFO",
                source: e.into(),
            })?;
            if multicast {
                s.set_multicast_all_v6(false)
                    .map_err(Error::io("IPV6_MULTICAST_ALL"))?;
                s.join_multicast_v6(&GROUP_V6, iface.index)
                    .map_err(Error::io("join ff02::12"))?;
            }
        } else {
            s.set_ttl_v4(TTL.into()).map_err(Error::io("IP_TTL"))?;
            s.set_multicast_ttl_v4(TTL.into())
                .map_err(Error::io("IP_MULTICAST_TTL"))?;
            s.set_tos_v4(TOS.into()).map_err(Error::io("IP_TOS"))?;
            s.set_multicast_loop_v4(false)
                .map_err(Error::io("IP_MULTICAST_LOOP"))?;
            if multicast {
                s.set_multicast_all_v4(false)
                    .map_err(Error::io("IP_MULTICAST_ALL"))?;
                s.join_multicast_v4_n(&GROUP_V4, &InterfaceIndexOrAddress::Index(iface.index))
                    .map_err(Error::io("join 224.0.0.18"))?;
            }
        }
        #[allow(unsafe_code)]
        // SAFETY: the Socket owns its descriptor; nothing else closes or
        // replaces it while the AsyncFd holds it (tokio#8587).
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| Error::Io {
            what: "register with the runtime",
            source: e.into(),
        })?;
        Ok(Self {
            fd,
            v6,
            index: iface.index,
        })
    }

    /// The group adverts go to in multicast mode.
    #[must_use]
    pub fn group(&self) -> IpAddr {
        if self.v6 {
            GROUP_V6.into()
        } else {
            GROUP_V4.into()
        }
    }

    /// Waits for the next packet. A packet too short to hold an IP header
    /// (IPv4) comes back as an `InvalidData` error to count and skip.
    ///
    /// # Errors
    /// The socket's error, or `InvalidData` for a truncated IPv4 header.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| {
                if self.v6 {
                    recv_v6(s.get_ref(), buf)
                } else {
                    recv_v4(s.get_ref(), buf)
                }
            }) {
                Ok(r) => return r,
                Err(_would_block) => {}
            }
        }
    }

    /// Sends `msg` from `src` to `dst` (the group or a unicast peer).
    ///
    /// # Errors
    /// The socket's error (e.g. no route, or `src` not on this host).
    pub async fn send(&self, msg: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| send(s.get_ref(), self.index, msg, src, dst)) {
                Ok(r) => return r,
                Err(_would_block) => {}
            }
        }
    }
}

fn recv_v4(s: &Socket, buf: &mut [u8]) -> io::Result<Received> {
    let (n, _) = recvfrom::<SockaddrIn>(s.as_raw_fd(), buf)?;
    // A raw IPv4 socket hands over the IP header too.
    let b = &buf[..n];
    let ihl = usize::from(b.first().copied().unwrap_or(0) & 0x0F) * 4;
    if n < 20 || b[0] >> 4 != 4 || ihl < 20 || ihl > n {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated IPv4 header",
        ));
    }
    let total = usize::from(u16::from_be_bytes([b[2], b[3]])).clamp(ihl, n);
    Ok(Received {
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]).into(),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]).into(),
        ttl: b[8],
        payload: ihl..total,
    })
}

fn recv_v6(s: &Socket, buf: &mut [u8]) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let src = msg.address.map(|a| IpAddr::V6(a.ip()));
    let (mut dst, mut ttl) = (None, None);
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
            _ => {}
        }
    }
    let n = msg.bytes;
    match (src, dst, ttl) {
        (Some(src), Some(dst), Some(ttl)) => Ok(Received {
            src,
            dst,
            ttl,
            payload: 0..n,
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "IPv6 packet without source, destination or hop limit",
        )),
    }
}

fn send(s: &Socket, index: u32, msg: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
    let iov = [io::IoSlice::new(msg)];
    let fd = s.as_raw_fd();
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: i32::try_from(index).unwrap_or(0),
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(src).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&to),
            )?;
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: src.octets(),
                },
                ipi6_ifindex: index,
            };
            let scope = if dst.is_unicast_link_local() || dst.is_multicast() {
                index
            } else {
                0
            };
            let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, scope));
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&to),
            )?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different families",
            ));
        }
    }
    Ok(())
}
