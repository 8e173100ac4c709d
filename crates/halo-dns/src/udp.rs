//! The UDP query loop: one blocking thread per socket, datagrams taken and
//! answered in batches with `recvmmsg`/`sendmmsg`.
//!
//! Why not a tokio task: measured with bench/dns.sh, a task doing
//! `recv_from`/`send_to` (two system calls and a readiness round trip per
//! query) answered 0.85–0.97× gdnsd's queries per second on one core. gdnsd
//! 3.8.1 takes up to 16 datagrams per `recvmmsg` (`MSG_WAITFORONE`) and replies
//! with `sendmmsg` (seen with strace here); so does this loop, up to [`BATCH`]
//! per call, blocking in the receive instead of polling. When queries come one
//! at a time, each call moves one.
//!
//! A socket bound to a wildcard address (`0.0.0.0`, `::`) learns each query's
//! destination address (`IP_PKTINFO` / `IPV6_RECVPKTINFO`) and replies from
//! it. Without that, a query to a second address of the host (a VRRP virtual
//! IP, say) would be answered from whatever address the route picks, and the
//! client would drop the reply.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, setsockopt, sockopt,
};

use crate::server::Answerer;

/// Datagrams per system call at most.
pub(crate) const BATCH: usize = 32;
/// Receive buffer per datagram. Queries are far smaller (a name is at most
/// 255 bytes); a larger datagram arrives cut, flagged `MSG_TRUNC`, and is dropped.
const SLOT: usize = 4096;
/// How often a blocked receive looks at the stop flag, should the wake-up on
/// stop (`shutdown`) not reach it.
const STOP_POLL: Duration = Duration::from_millis(250);

/// The local address a query was sent to, as the kernel reported it.
#[derive(Clone, Copy)]
enum Dest {
    /// A socket bound to one address: the kernel picks that one.
    Bound,
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl Dest {
    fn same(&self, other: &Dest) -> bool {
        match (self, other) {
            (Dest::Bound, Dest::Bound) => true,
            // The reply names the address only (interface left to routing).
            (Dest::V4(a), Dest::V4(b)) => a.ipi_addr.s_addr == b.ipi_addr.s_addr,
            (Dest::V6(a), Dest::V6(b)) => {
                a.ipi6_addr.s6_addr == b.ipi6_addr.s6_addr && a.ipi6_ifindex == b.ipi6_ifindex
            }
            _ => false,
        }
    }
}

/// Makes `socket` ready for [`serve`]: blocking with a receive timeout, and
/// on a wildcard address told to report each datagram's destination.
pub(crate) fn prepare(socket: &UdpSocket) -> std::io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(STOP_POLL))?;
    let local = socket.local_addr()?;
    if local.ip().is_unspecified() {
        let r = if local.is_ipv4() {
            setsockopt(socket, sockopt::Ipv4PacketInfo, &true)
        } else {
            setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)
        };
        r.map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Answers datagrams on `socket` until `stop` is set.
#[allow(clippy::needless_pass_by_value)] // the thread owns its socket and answerer
pub(crate) fn serve(socket: UdpSocket, mut answerer: Answerer, stop: Arc<AtomicBool>) {
    let fd = socket.as_raw_fd();
    let local = socket.local_addr().ok();
    let wildcard = local.is_some_and(|a| a.ip().is_unspecified());
    let v4 = local.is_some_and(|a| a.is_ipv4());
    // Each control buffer holds exactly one pktinfo of the socket's family:
    // the kernel shrinks msg_controllen to what it wrote, and recvmmsg does
    // not reset it, so every datagram must bring the same one (it does: the
    // option is on for the socket's life).
    let cmsg = || -> Option<Vec<u8>> {
        if !wildcard {
            None
        } else if v4 {
            Some(nix::cmsg_space!(libc::in_pktinfo))
        } else {
            Some(nix::cmsg_space!(libc::in6_pktinfo))
        }
    };
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, cmsg());
    // Separate headers to send: sendmmsg points them at its own addresses.
    // Without pktinfo the control length must stay 0.
    let mut send_plain = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_info = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, cmsg());
    let mut bufs: Box<[[u8; SLOT]; BATCH]> = Box::new([[0; SLOT]; BATCH]);
    let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut lens = [0usize; BATCH];
    let mut from: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    let mut dest = [Dest::Bound; BATCH];
    let mut cut = [false; BATCH];
    let source = Arc::clone(&answerer.published);

    while !stop.load(Ordering::Relaxed) {
        let received = {
            let mut iovs = bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => {
                    let mut n = 0;
                    for (i, msg) in results.enumerate() {
                        lens[i] = msg.bytes;
                        from[i] = msg.address;
                        cut[i] = msg.flags.contains(MsgFlags::MSG_TRUNC);
                        dest[i] = Dest::Bound;
                        // Control messages come only when asked for (wildcard).
                        if wildcard && let Ok(cmsgs) = msg.cmsgs() {
                            for c in cmsgs {
                                match c {
                                    ControlMessageOwned::Ipv4PacketInfo(p) => dest[i] = Dest::V4(p),
                                    ControlMessageOwned::Ipv6PacketInfo(p) => dest[i] = Dest::V6(p),
                                    _ => {}
                                }
                            }
                        }
                        n = i + 1;
                    }
                    n
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    // ICMP errors from earlier sends can surface here; keep going.
                    tracing::debug!(error = %e, "UDP receive error");
                    continue;
                }
            }
        };

        // Answer each; a slot with nothing to send gets `from = None`. One
        // snapshot for the batch (a reload shows from the next one).
        let published = source.load();
        for i in 0..received {
            let src = from[i].as_ref().and_then(socket_addr);
            let Some(src) = src else {
                // A shutdown wake-up (0 bytes, no sender) or a family we do not serve.
                from[i] = None;
                continue;
            };
            if cut[i] {
                answerer.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %src, "oversized DNS datagram dropped");
                from[i] = None;
                continue;
            }
            if !answerer.answer_from(&published, &bufs[i][..lens[i]], src, true, &mut replies[i]) {
                from[i] = None;
            }
        }

        // Send in runs of replies that leave from the same local address.
        let mut start = 0;
        while start < received {
            if from[start].is_none() {
                start += 1;
                continue;
            }
            let mut end = start + 1;
            while end < received && from[end].is_some() && dest[end].same(&dest[start]) {
                end += 1;
            }
            send_run(
                fd,
                &mut send_plain,
                &mut send_info,
                &replies[start..end],
                &from[start..end],
                dest[start],
            );
            start = end;
        }
    }
}

/// Sends `replies[i]` to `to[i]` from `dest`, in as few calls as the kernel allows.
fn send_run(
    fd: std::os::fd::RawFd,
    plain: &mut MultiHeaders<SockaddrStorage>,
    info: &mut MultiHeaders<SockaddrStorage>,
    replies: &[Vec<u8>],
    to: &[Option<SockaddrStorage>],
    dest: Dest,
) {
    // Reply from the address asked; for IPv4 let routing pick the interface.
    let v4 = match dest {
        Dest::V4(mut p) => {
            p.ipi_spec_dst = p.ipi_addr;
            p.ipi_ifindex = 0;
            Some(p)
        }
        _ => None,
    };
    let cmsg = match (&dest, &v4) {
        (Dest::V4(_), Some(p)) => Some(ControlMessage::Ipv4PacketInfo(p)),
        (Dest::V6(p), _) => Some(ControlMessage::Ipv6PacketInfo(p)),
        _ => None,
    };
    let (headers, cmsgs) = match &cmsg {
        Some(c) => (info, std::slice::from_ref(c)),
        None => (plain, &[][..]),
    };
    let mut done = 0;
    while done < replies.len() {
        let mut slices: [[IoSlice<'_>; 1]; BATCH] = [[IoSlice::new(&[])]; BATCH];
        for (slot, reply) in slices.iter_mut().zip(&replies[done..]) {
            *slot = [IoSlice::new(reply)];
        }
        let n = replies.len() - done;
        let sent = sendmmsg(
            fd,
            headers,
            &slices[..n],
            &to[done..],
            cmsgs,
            MsgFlags::empty(),
        )
        .map(Iterator::count);
        match sent {
            Ok(k) if k > 0 => done += k,
            Ok(_) => done += 1,
            Err(e) => {
                // The first of the rest failed (its address, say): skip it.
                tracing::debug!(error = %e, "UDP send failed");
                done += 1;
            }
        }
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*a)));
    }
    s.as_sockaddr_in6()
        .map(|a| SocketAddr::V6(SocketAddrV6::from(*a)))
}
