//! A socket option of the DNS tier's UDP sockets that neither socket2 nor
//! nix offer: ignoring path MTU information.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Sets `IP_MTU_DISCOVER` (`IPV6_MTU_DISCOVER` when `v6`) to
/// `IP_PMTUDISC_OMIT` on a UDP socket: replies leave without DF and their
/// size ignores any path MTU the kernel has learned.
///
/// Why: an authoritative DNS server's replies fit the minimum MTU (halo caps
/// them at 1232 bytes), and a forged ICMP "fragmentation needed" could
/// otherwise lower the path MTU towards a resolver so replies go out in
/// fragments, which can be spoofed (the fragmentation attacks on DNS).
/// gdnsd 3 sets the same (seen with strace here). It also spares the send path a
/// route-MTU lookup per datagram.
///
/// # Errors
/// The kernel's (`ENOTSOCK` for a descriptor that is not a socket; a kernel
/// before 3.15 does not know the value).
pub fn omit_path_mtu(socket: &impl AsFd, v6: bool) -> io::Result<()> {
    let (level, name, value) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_OMIT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_OMIT,
        )
    };
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
    #[allow(unsafe_code)]
    // SAFETY: the descriptor is borrowed open for the call; the value is a
    // c_int on the stack and `len` is its size, as the option expects.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(socket: &impl AsFd, level: i32, name: i32) -> i32 {
        let mut value: libc::c_int = -1;
        let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: as in omit_path_mtu, with room for the c_int the kernel writes.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_fd().as_raw_fd(),
                level,
                name,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn the_option_is_set_on_both_families() {
        let v4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        omit_path_mtu(&v4, false).unwrap();
        assert_eq!(
            get(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_OMIT
        );
        let Ok(v6) = std::net::UdpSocket::bind("[::1]:0") else {
            eprintln!("SKIPPED the IPv6 half: no ::1 on this host");
            return;
        };
        omit_path_mtu(&v6, true).unwrap();
        assert_eq!(
            get(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
            libc::IPV6_PMTUDISC_OMIT
        );
    }

    #[test]
    fn a_descriptor_that_is_no_socket_gets_the_kernels_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = omit_path_mtu(&file, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSOCK));
    }
}
