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
//!
//! The batches themselves are [`halo_net::UdpBatch`]: replies go to the
//! senders' addresses straight out of the receive headers (nix's wrappers
//! copied each address twice; bench/dns-instructions.sh measured it).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use halo_net::{BATCH, UdpBatch};
use nix::sys::socket::{setsockopt, sockopt};

use crate::server::Answerer;

/// How often a blocked receive looks at the stop flag, should the wake-up on
/// stop (`shutdown`) not reach it.
const STOP_POLL: Duration = Duration::from_millis(250);

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
    let wildcard = socket.local_addr().is_ok_and(|a| a.ip().is_unspecified());
    // Built here, on the socket's own thread (the batch holds raw pointers).
    let mut batch = UdpBatch::new(wildcard);
    let mut replies: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| Vec::with_capacity(usize::from(crate::wire::EDNS_PAYLOAD)))
        .collect();
    let mut answered = [false; BATCH];
    let source = Arc::clone(&answerer.published);

    while !stop.load(Ordering::Relaxed) {
        let received = match batch.recv(&socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors from earlier sends can surface here; keep going.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };

        // Answer each. One snapshot for the batch (a reload shows from the
        // next one).
        let published = source.load();
        for (i, slot) in answered.iter_mut().enumerate().take(received) {
            *slot = false;
            // None: a shutdown wake-up (no sender) or a family not served.
            let Some(d) = batch.datagram(i) else { continue };
            if d.truncated {
                answerer.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %d.from, "oversized DNS datagram dropped");
                continue;
            }
            *slot = answerer.answer_from(&published, d.data, d.from, true, &mut replies[i]);
        }
        let sent = batch.send(
            &socket,
            (0..received)
                .filter(|&i| answered[i])
                .map(|i| (i, replies[i].as_slice())),
        );
        if let Some(e) = sent.first_error {
            tracing::debug!(error = ?e, failed = sent.failed, "UDP send failed");
        }
    }
}
