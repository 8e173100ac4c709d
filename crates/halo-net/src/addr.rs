//! Virtual addresses on an interface, through rtnetlink (`ip addr add/del`).

use std::net::IpAddr;

use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::address::AddressHeaderFlags;

use crate::Error;

/// EEXIST: the address is already there.
const EEXIST: i32 = 17;
/// EADDRNOTAVAIL: the address is not there.
const EADDRNOTAVAIL: i32 = 99;

/// A netlink connection for address changes. Its connection task runs on
/// the tokio runtime current when it was opened.
#[derive(Debug, Clone)]
pub struct Addresses {
    handle: rtnetlink::Handle,
}

impl Addresses {
    /// Opens the netlink socket. Needs a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be opened.
    pub fn open() -> Result<Self, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(Error::io("netlink socket"))?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Adds `addr/prefix` to interface `index`; `Ok(false)` when it was
    /// already there. IPv6 addresses skip duplicate address detection (they
    /// must work at once after a takeover, as keepalived's do).
    ///
    /// # Errors
    /// [`Error::Netlink`] with the kernel's answer.
    pub async fn add(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<bool, Error> {
        let mut req = self.handle.address().add(index, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EEXIST => Ok(false),
            Err(e) => Err(Error::Netlink {
                what: "add address",
                message: e.to_string(),
            }),
        }
    }

    /// Removes `addr/prefix` from interface `index`; `Ok(false)` when it was
    /// not there.
    ///
    /// # Errors
    /// [`Error::Netlink`] with the kernel's answer.
    pub async fn remove(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<bool, Error> {
        let mut add = self.handle.address().add(index, addr, prefix);
        let msg = add.message_mut().clone();
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EADDRNOTAVAIL => Ok(false),
            Err(e) => Err(Error::Netlink {
                what: "remove address",
                message: e.to_string(),
            }),
        }
    }

    /// Whether interface `index` holds `addr`.
    ///
    /// # Errors
    /// [`Error::Netlink`] with the kernel's answer.
    pub async fn has(&self, index: u32, addr: IpAddr) -> Result<bool, Error> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr)
            .execute();
        match found.try_next().await {
            Ok(m) => Ok(m.is_some()),
            Err(e) => Err(Error::Netlink {
                what: "list addresses",
                message: e.to_string(),
            }),
        }
    }
}

/// Follows whether interface `index` is operationally up (IFF_RUNNING:
/// administratively up with carrier), from rtnetlink link notifications.
/// The receiver starts with the state read at open; the task ends when every
/// receiver is dropped.
///
/// # Errors
/// [`Error::Io`] / [`Error::Netlink`] when the state cannot be read.
pub async fn watch_link(index: u32) -> Result<tokio::sync::watch::Receiver<bool>, Error> {
    use futures_util::StreamExt as _;
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::{LinkFlags, LinkMessage};

    let running = |m: &LinkMessage| m.header.flags.contains(LinkFlags::Running);
    let (conn, handle, mut messages) =
        rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
            .map_err(Error::io("netlink link monitor"))?;
    tokio::spawn(conn);
    let first = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .map_err(|e| Error::Netlink {
            what: "read link",
            message: e.to_string(),
        })?;
    let up = first.as_ref().is_some_and(running);
    let (tx, rx) = tokio::sync::watch::channel(up);
    tokio::spawn(async move {
        // `handle` keeps the connection open as long as this task runs.
        let _handle = handle;
        loop {
            tokio::select! {
                () = tx.closed() => break,
                m = messages.next() => {
                    let Some((m, _)) = m else { break };
                    let state = match m.payload {
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
                            if l.header.index == index => running(&l),
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l))
                            if l.header.index == index => false,
                        _ => continue,
                    };
                    tx.send_if_modified(|old| std::mem::replace(old, state) != state);
                }
            }
        }
    });
    Ok(rx)
}
