//! Batched UDP I/O for the DNS tier: up to [`BATCH`] datagrams taken with
//! one `recvmmsg` and the replies sent with one `sendmmsg`, in place.
//!
//! Why not nix's `recvmmsg`/`sendmmsg`: they copy every sender address into
//! and out of their own storage and parse the control messages through
//! iterators: about 80 of halo's ~1,450 instructions per query
//! (bench/dns-instructions.sh, before and after). Here a reply goes to the address
//! the query came from straight out of the receive headers (as gdnsd does),
//! with the query's own destination as its source (`IP_PKTINFO`), so one
//! `sendmmsg` can answer queries sent to different local addresses.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr;

/// Datagrams per system call at most.
pub const BATCH: usize = 32;
/// Receive buffer per datagram. Queries are far smaller (a name is at most
/// 255 bytes); a larger datagram arrives cut and is reported truncated.
pub const SLOT: usize = 4096;

/// A sender's address as the kernel writes it: either family fits.
#[repr(C)]
#[derive(Clone, Copy)]
union Name {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// Room for one control message with an `in6_pktinfo` (the larger of the two
/// families'), aligned as `cmsghdr` needs.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; 64]);

/// One datagram of the last [`UdpBatch::recv`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Its bytes (cut at [`SLOT`] when `truncated`).
    pub data: &'a [u8],
    /// Who sent it.
    pub from: SocketAddr,
    /// It was larger than [`SLOT`].
    pub truncated: bool,
}

/// What [`UdpBatch::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams it refused (each skipped after its error).
    pub failed: usize,
    /// The first refusal, for a log line.
    pub first_error: Option<io::ErrorKind>,
}

/// The buffers and headers of one socket's batches. Built and used on the
/// thread that serves the socket; the headers' pointers are set again
/// before every call, so the value may move between calls.
pub struct UdpBatch {
    bufs: Box<[[u8; SLOT]; BATCH]>,
    names: [Name; BATCH],
    controls: [Control; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
    iovs: [libc::iovec; BATCH],
    out_hdrs: [libc::mmsghdr; BATCH],
    out_iovs: [libc::iovec; BATCH],
    received: usize,
    pktinfo: bool,
}

impl std::fmt::Debug for UdpBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpBatch")
            .field("received", &self.received)
            .field("pktinfo", &self.pktinfo)
            .finish_non_exhaustive()
    }
}

const fn socklen(n: usize) -> libc::socklen_t {
    // Sizes of small structs: far below u32::MAX.
    #[allow(clippy::cast_possible_truncation)]
    {
        n as libc::socklen_t
    }
}

impl UdpBatch {
    /// Buffers for a socket; `pktinfo` when the socket has `IP_PKTINFO` /
    /// `IPV6_RECVPKTINFO` on (a wildcard address): each reply then leaves
    /// from the address its query was sent to.
    #[must_use]
    pub fn new(pktinfo: bool) -> Self {
        // SAFETY: all four are plain C structs of integers and pointers, for
        // which all zeros is a valid value (null pointers, zero lengths).
        #[allow(unsafe_code)]
        let (name, hdr, iov) = unsafe {
            (
                std::mem::zeroed::<Name>(),
                std::mem::zeroed::<libc::mmsghdr>(),
                std::mem::zeroed::<libc::iovec>(),
            )
        };
        Self {
            bufs: Box::new([[0; SLOT]; BATCH]),
            names: [name; BATCH],
            controls: [Control([0; 64]); BATCH],
            hdrs: [hdr; BATCH],
            iovs: [iov; BATCH],
            out_hdrs: [hdr; BATCH],
            out_iovs: [iov; BATCH],
            received: 0,
            pktinfo,
        }
    }

    /// Blocks until at least one datagram is there (or the socket's receive
    /// timeout passes), then takes what is queued, up to [`BATCH`]
    /// (`MSG_WAITFORONE`). Returns how many; see [`Self::datagram`].
    ///
    /// # Errors
    /// The kernel's: `WouldBlock` on the receive timeout, `Interrupted`, or
    /// an ICMP error an earlier send left on the socket.
    pub fn recv(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        self.received = 0;
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = (&raw mut self.names[i]).cast();
            h.msg_hdr.msg_namelen = socklen(size_of::<Name>());
            h.msg_hdr.msg_iov = &raw mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if self.pktinfo {
                h.msg_hdr.msg_control = (&raw mut self.controls[i]).cast();
                h.msg_hdr.msg_controllen = size_of::<Control>();
            } else {
                h.msg_hdr.msg_control = ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at buffers of this value (bufs, names,
        // controls, iovs) with their true lengths, and `&mut self` keeps
        // them alive and unaliased for the call; BATCH headers exist.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recvmmsg(
                socket.as_fd().as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                socklen(BATCH),
                libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        self.received = n.min(BATCH);
        Ok(self.received)
    }

    /// Datagram `i` (< what [`Self::recv`] returned); `None` for one with
    /// no sender of a family served (the empty datagram `shutdown` wakes a
    /// blocked receive with, say).
    #[must_use]
    pub fn datagram(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.received {
            return None;
        }
        let h = &self.hdrs[i];
        let namelen = usize::try_from(h.msg_hdr.msg_namelen).unwrap_or(0);
        // SAFETY: both members are plain integers in C layout; the family
        // field is first in both, and the kernel wrote `namelen` bytes.
        #[allow(unsafe_code)]
        let from = unsafe {
            let name = &self.names[i];
            match i32::from(name.v4.sin_family) {
                libc::AF_INET if namelen >= size_of::<libc::sockaddr_in>() => {
                    let a = name.v4;
                    SocketAddr::V4(SocketAddrV4::new(
                        Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                        u16::from_be(a.sin_port),
                    ))
                }
                libc::AF_INET6 if namelen >= size_of::<libc::sockaddr_in6>() => {
                    let a = name.v6;
                    SocketAddr::V6(SocketAddrV6::new(
                        Ipv6Addr::from(a.sin6_addr.s6_addr),
                        u16::from_be(a.sin6_port),
                        a.sin6_flowinfo,
                        a.sin6_scope_id,
                    ))
                }
                _ => return None,
            }
        };
        let len = usize::try_from(h.msg_len).unwrap_or(0).min(SLOT);
        Some(Datagram {
            data: &self.bufs[i][..len],
            from,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        })
    }

    /// Sends each `(i, reply)` to the sender of datagram `i` of the last
    /// receive, from the address that datagram was sent to, in as few calls
    /// as the kernel allows. A datagram the kernel refuses is skipped.
    pub fn send<'r>(
        &mut self,
        socket: &impl AsFd,
        replies: impl IntoIterator<Item = (usize, &'r [u8])>,
    ) -> Sent {
        let mut k = 0;
        for (i, reply) in replies {
            if i >= self.received || k == BATCH {
                continue;
            }
            let control = self.reply_control(i);
            self.out_iovs[k] = libc::iovec {
                // The kernel only reads through it (sendmmsg).
                iov_base: reply.as_ptr().cast_mut().cast(),
                iov_len: reply.len(),
            };
            let h = &mut self.out_hdrs[k];
            h.msg_len = 0;
            h.msg_hdr.msg_name = (&raw mut self.names[i]).cast();
            h.msg_hdr.msg_namelen = self.hdrs[i].msg_hdr.msg_namelen;
            h.msg_hdr.msg_iov = &raw mut self.out_iovs[k];
            h.msg_hdr.msg_iovlen = 1;
            (h.msg_hdr.msg_control, h.msg_hdr.msg_controllen) = match control {
                Some(len) => ((&raw mut self.controls[i]).cast(), len),
                None => (ptr::null_mut(), 0),
            };
            h.msg_hdr.msg_flags = 0;
            k += 1;
        }
        let mut out = Sent::default();
        let fd = socket.as_fd().as_raw_fd();
        while out.sent + out.failed < k {
            let at = out.sent + out.failed;
            // SAFETY: headers at..k point at names and controls of this
            // value and at the caller's replies, all alive for the call.
            #[allow(unsafe_code)]
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.out_hdrs[at..].as_mut_ptr(),
                    socklen(k - at),
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(r) {
                Ok(0) => {
                    out.failed += 1;
                }
                Ok(n) => out.sent += n,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        // The first of the rest failed (its address, say).
                        out.failed += 1;
                        out.first_error.get_or_insert(e.kind());
                    }
                }
            }
        }
        out
    }

    /// Makes datagram `i`'s pktinfo fit for sending the reply from the
    /// address the query went to; returns the control length, or `None`
    /// when there is none.
    fn reply_control(&mut self, i: usize) -> Option<usize> {
        if !self.pktinfo {
            return None;
        }
        let len = self.hdrs[i].msg_hdr.msg_controllen;
        let c = &mut self.controls[i].0;
        // Where the one control message's data starts: CMSG_LEN(0), the
        // header rounded up to size_t (16 on 64-bit Linux).
        let head = size_of::<libc::cmsghdr>().next_multiple_of(size_of::<usize>());
        if len < head || len > c.len() {
            return None;
        }
        // The cmsghdr read field by field from the bytes: length, level,
        // type, then the data.
        let at = std::mem::offset_of!(libc::cmsghdr, cmsg_level);
        let level = i32::from_ne_bytes(c[at..at + 4].try_into().ok()?);
        let at = std::mem::offset_of!(libc::cmsghdr, cmsg_type);
        let kind = i32::from_ne_bytes(c[at..at + 4].try_into().ok()?);
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if len >= head + 12 => {
                // in_pktinfo: ifindex (4), spec_dst (4), addr (4). Reply
                // from the address asked (spec_dst = addr), interface left
                // to routing.
                let (ifindex, rest) = c[head..head + 12].split_at_mut(4);
                ifindex.fill(0);
                let (spec_dst, addr) = rest.split_at_mut(4);
                spec_dst.copy_from_slice(addr);
                Some(len)
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if len >= head + 20 => {
                // in6_pktinfo: addr (16), ifindex (4). The interface is kept
                // only for a link-local address: a global one that lives on
                // another interface (lo, behind a load balancer) would be
                // misrouted by it (gdnsd does the same).
                let link_local = c[head] == 0xfe && c[head + 1] & 0xc0 == 0x80;
                if !link_local {
                    c[head + 16..head + 20].fill(0);
                }
                Some(len)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn server(addr: &str) -> UdpSocket {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    #[test]
    fn echoes_a_batch_back_to_each_sender() {
        let srv = server("127.0.0.1:0");
        let to = srv.local_addr().unwrap();
        let clients: Vec<UdpSocket> = (0..3).map(|_| server("127.0.0.1:0")).collect();
        for (n, c) in clients.iter().enumerate() {
            c.send_to(&[u8::try_from(n).unwrap(); 3], to).unwrap();
        }
        let mut batch = UdpBatch::new(false);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let n = batch.recv(&srv).unwrap();
            let mut replies = Vec::new();
            for i in 0..n {
                let d = batch.datagram(i).unwrap();
                assert!(!d.truncated);
                seen.push((d.from, d.data.to_vec()));
                replies.push((i, d.data.iter().map(|b| b + 10).collect::<Vec<u8>>()));
            }
            let sent = batch.send(&srv, replies.iter().map(|(i, r)| (*i, r.as_slice())));
            assert_eq!(
                sent,
                Sent {
                    sent: n,
                    failed: 0,
                    first_error: None
                }
            );
        }
        for (n, c) in clients.iter().enumerate() {
            let me = c.local_addr().unwrap();
            assert!(seen.iter().any(|(f, _)| *f == me));
            let mut buf = [0u8; 16];
            let (len, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, to);
            assert_eq!(&buf[..len], &[u8::try_from(n).unwrap() + 10; 3]);
        }
    }

    #[test]
    fn reports_a_datagram_larger_than_a_slot_as_truncated() {
        let srv = server("127.0.0.1:0");
        let c = server("127.0.0.1:0");
        c.send_to(&vec![7u8; SLOT + 100], srv.local_addr().unwrap())
            .unwrap();
        let mut batch = UdpBatch::new(false);
        assert_eq!(batch.recv(&srv).unwrap(), 1);
        let d = batch.datagram(0).unwrap();
        assert!(d.truncated);
        assert_eq!(d.data.len(), SLOT);
        assert!(batch.datagram(1).is_none());
    }

    #[test]
    fn with_pktinfo_a_wildcard_socket_replies_from_the_address_asked() {
        // 127.0.0.1 and 127.0.0.2 are both local (all of 127/8 is on lo).
        let srv = server("0.0.0.0:0");
        nix::sys::socket::setsockopt(&srv, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
            .unwrap();
        let port = srv.local_addr().unwrap().port();
        let c = server("127.0.0.1:0");
        let mut batch = UdpBatch::new(true);
        for asked in ["127.0.0.1", "127.0.0.2"] {
            let to: SocketAddr = format!("{asked}:{port}").parse().unwrap();
            c.send_to(b"q", to).unwrap();
            assert_eq!(batch.recv(&srv).unwrap(), 1);
            assert_eq!(batch.datagram(0).unwrap().from, c.local_addr().unwrap());
            let sent = batch.send(&srv, [(0, &b"r"[..])]);
            assert_eq!(sent.sent, 1);
            let mut buf = [0u8; 4];
            let (_, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, to, "the reply must come from the address asked");
        }
    }

    #[test]
    fn the_receive_timeout_is_an_error_not_a_datagram() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        srv.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut batch = UdpBatch::new(false);
        let e = batch.recv(&srv).unwrap_err();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(batch.datagram(0).is_none());
    }

    #[test]
    fn a_shutdown_wake_up_has_no_sender() {
        let srv = server("127.0.0.1:0");
        // Linux answers ENOTCONN for an unconnected UDP socket, yet marks it
        // shut and wakes its readers: what halo-dns uses to stop a worker.
        let _ = socket2::SockRef::from(&srv).shutdown(std::net::Shutdown::Read);
        let mut batch = UdpBatch::new(false);
        let n = batch.recv(&srv).unwrap();
        assert!(n >= 1);
        assert!(batch.datagram(0).is_none());
    }
}
