//! RFC 9568 Accept_Mode false: a master that does not own the addresses must
//! not accept packets sent to them. Linux accepts packets to any local
//! address, so, as keepalived does with `no_accept`, halo drops them with an
//! nftables rule: table `inet halo`, sets `vips4` / `vips6` of the addresses
//! held without accept mode, and an input rule dropping traffic to them.
//! The `nft` program (Debian's nftables) applies each change as one
//! transaction.

use std::net::IpAddr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;

use crate::Error;

/// The table, sets and rules, created or refreshed with every change (each
/// `add` is idempotent; the chain is flushed so its rules exist once).
const PREAMBLE: &str = "add table inet halo
add set inet halo vips4 { type ipv4_addr; }
add set inet halo vips6 { type ipv6_addr; }
add chain inet halo input { type filter hook input priority filter; policy accept; }
flush chain inet halo input
add rule inet halo input ip daddr @vips4 drop
add rule inet halo input ip6 daddr @vips6 drop
";

/// Checks that `nft` can be run (at start, so a config with
/// `accept = false` fails loudly rather than at the first takeover).
///
/// # Errors
/// [`Error::Io`] when `nft` is missing or fails.
pub fn check_nft() -> Result<(), Error> {
    let out = std::process::Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(Error::io(
            "run nft (accept = false needs Debian's nftables)",
        ))?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::Netlink {
            what: "nft --version",
            message: format!("exited with {out}"),
        })
    }
}

/// Drops traffic to `addrs` from now on.
///
/// # Errors
/// [`Error::Netlink`] with what nft said.
pub async fn block(addrs: &[IpAddr]) -> Result<(), Error> {
    let mut script = String::from(PREAMBLE);
    script.push_str(&elements("add", addrs));
    nft(&script).await
}

/// Accepts traffic to `addrs` again (addresses not blocked are ignored).
///
/// # Errors
/// [`Error::Netlink`] with what nft said.
pub async fn unblock(addrs: &[IpAddr]) -> Result<(), Error> {
    // One transaction per address: `delete element` of an address that is
    // not in the set fails the whole transaction.
    let mut result = Ok(());
    for a in addrs {
        let script = String::from(PREAMBLE) + &elements("delete", std::slice::from_ref(a));
        if let Err(e) = nft(&script).await
            && !e.to_string().contains("No such file or directory")
        {
            result = Err(e);
        }
    }
    result
}

fn elements(verb: &str, addrs: &[IpAddr]) -> String {
    let mut out = String::new();
    for (set, v6) in [("vips4", false), ("vips6", true)] {
        let list: Vec<String> = addrs
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(ToString::to_string)
            .collect();
        if !list.is_empty() {
            out.push_str(&format!(
                "{verb} element inet halo {set} {{ {} }}\n",
                list.join(", ")
            ));
        }
    }
    out
}

async fn nft(script: &str) -> Result<(), Error> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io("run nft"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(Error::io("write to nft"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(Error::io("wait for nft"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Netlink {
            what: "nft",
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_go_to_the_set_of_their_family() {
        let addrs: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(
            elements("add", &addrs),
            "add element inet halo vips4 { 192.0.2.1 }\nadd element inet halo vips6 { 2001:db8::1 }\n"
        );
        assert_eq!(elements("delete", &[]), "");
    }
}
