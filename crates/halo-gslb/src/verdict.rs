//! Whether another site's endpoint may be answered: one verdict from what
//! its own site publishes, whether that site's DNS node answers, and what
//! the probes of this node and of the other sites' nodes find. Pure; the
//! table in docs/operations.md is [`judge`], row for row, and the table
//! test below checks each row.
//!
//! The principles:
//! - **The site knows best while it can say so.** A site whose DNS node
//!   answers decides for its endpoints: listed is up, not listed is down,
//!   whatever the probes say (a failing probe is logged and shown; the site
//!   sees its endpoints from inside, through its own checks).
//! - **A silent site is not a dead one.** When its DNS node does not answer,
//!   the probes decide: a majority that reaches the endpoint keeps it,
//!   a majority that does not withdraws it (within the probes' `fall` ×
//!   interval). Without probes, the site's last word stands until it is
//!   stale, as before (k8gb's protocol alone cannot tell more).
//! - **The last word of a drained site stands.** An endpoint the site stopped
//!   listing before it went silent stays down, whatever the probes find (it
//!   was taken out on purpose, or by the site's own checks).
//! - **No flapping on ties.** A tie of probe votes keeps the previous verdict.
//!
//! Two sites (one vantage point each side): the other site's endpoints are
//! judged by this node's probe alone when its DNS node is silent. A cut
//! between the sites that also cuts the probes makes each site answer only
//! its own endpoints: never an empty answer.

/// What an endpoint's own site said of it, in its `localtargets-` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteWord {
    /// Its last answer lists the endpoint.
    Listed,
    /// Its last answer does not (the site has it down, or drained it).
    NotListed,
    /// The site has not answered about this service yet.
    Never,
}

/// The endpoint's site's DNS node, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteDns {
    /// It answered the last question.
    Reachable,
    /// It did not, for less than `peer_stale_after` since its last answer.
    Unreachable,
    /// It has not answered for `peer_stale_after` (or ever).
    Stale,
}

/// Probe verdicts on the endpoint: this node's, and those the other sites'
/// nodes publish (`probes-<service>`), from nodes that answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Votes {
    /// Probes that reach it.
    pub up: u32,
    /// Probes that do not.
    pub down: u32,
}

/// Why a verdict is what it is (shown in the status, logged on a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its site lists it.
    SiteSaysUp,
    /// Its site lists it, though a majority of probes cannot reach it.
    SiteSaysUpProbesDisagree,
    /// Its site answers without it.
    SiteSaysDown,
    /// Its site's last answer, before it fell silent, did not list it.
    SiteLastSaidDown,
    /// Its site is silent (not yet stale) and nothing probes it: its last
    /// answer stands.
    LastKnown,
    /// Its site is silent, and a majority of probes reaches it.
    ProbesUp,
    /// Its site is silent, and a majority of probes does not reach it.
    ProbesDown,
    /// Its site is silent and the probes are split: the verdict stays.
    ProbesTied,
    /// Its site has been silent for `peer_stale_after` and nothing probes
    /// it (or it never spoke).
    Stale,
}

impl Why {
    /// A short text for logs and the status.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SiteSaysUp => "its site lists it",
            Self::SiteSaysUpProbesDisagree => {
                "its site lists it (a majority of probes does not reach it)"
            }
            Self::SiteSaysDown => "its site does not list it",
            Self::SiteLastSaidDown => "its site's last answer did not list it",
            Self::LastKnown => "its site is silent; its last answer stands",
            Self::ProbesUp => "its site is silent; a majority of probes reaches it",
            Self::ProbesDown => "its site is silent; a majority of probes does not reach it",
            Self::ProbesTied => "its site is silent; the probes are split, the verdict stays",
            Self::Stale => "its site has been silent too long and nothing probes it",
        }
    }
}

/// The verdict on one remote endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// May be answered.
    pub up: bool,
    /// Why.
    pub why: Why,
}

/// Judges one endpoint of another site. `previous`: the verdict before
/// (None the first time), which a tie of probes keeps.
#[must_use]
pub fn judge(word: SiteWord, dns: SiteDns, votes: Votes, previous: Option<bool>) -> Verdict {
    let v = |up, why| Verdict { up, why };
    let majority = match votes.up.cmp(&votes.down) {
        _ if votes.up + votes.down == 0 => None,
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    };
    let tied = votes.up + votes.down > 0 && majority.is_none();
    match (dns, word) {
        (SiteDns::Reachable, SiteWord::Listed) if majority == Some(false) => {
            v(true, Why::SiteSaysUpProbesDisagree)
        }
        (SiteDns::Reachable, SiteWord::Listed) => v(true, Why::SiteSaysUp),
        (SiteDns::Reachable, SiteWord::NotListed | SiteWord::Never) => v(false, Why::SiteSaysDown),
        (_, SiteWord::NotListed) => v(false, Why::SiteLastSaidDown),
        // Silent, its last word "up" or none: the probes decide.
        (_, _) if majority == Some(true) => v(true, Why::ProbesUp),
        (_, _) if majority == Some(false) => v(false, Why::ProbesDown),
        (SiteDns::Unreachable, SiteWord::Listed) if tied => {
            v(previous.unwrap_or(true), Why::ProbesTied)
        }
        (_, _) if tied => v(previous.unwrap_or(false), Why::ProbesTied),
        (SiteDns::Unreachable, SiteWord::Listed) => v(true, Why::LastKnown),
        (SiteDns::Unreachable, SiteWord::Never) | (SiteDns::Stale, _) => v(false, Why::Stale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SiteDns::{Reachable, Stale, Unreachable};
    use SiteWord::{Listed, Never, NotListed};

    const fn votes(up: u32, down: u32) -> Votes {
        Votes { up, down }
    }

    /// The table of docs/operations.md, row for row: (word, dns, votes,
    /// previous, up, why).
    #[test]
    fn the_verdict_table() {
        let table = [
            // The site answers: it knows best.
            (Listed, Reachable, votes(0, 0), None, true, Why::SiteSaysUp),
            (Listed, Reachable, votes(2, 0), None, true, Why::SiteSaysUp),
            (
                Listed,
                Reachable,
                votes(0, 2),
                Some(true),
                true,
                Why::SiteSaysUpProbesDisagree,
            ),
            (
                NotListed,
                Reachable,
                votes(3, 0),
                Some(true),
                false,
                Why::SiteSaysDown,
            ),
            (
                Never,
                Reachable,
                votes(3, 0),
                None,
                false,
                Why::SiteSaysDown,
            ),
            // Silent, not stale: the probes decide; without them the last word.
            (
                Listed,
                Unreachable,
                votes(0, 0),
                Some(true),
                true,
                Why::LastKnown,
            ),
            (
                Listed,
                Unreachable,
                votes(2, 1),
                Some(false),
                true,
                Why::ProbesUp,
            ),
            (
                Listed,
                Unreachable,
                votes(1, 2),
                Some(true),
                false,
                Why::ProbesDown,
            ),
            (
                Listed,
                Unreachable,
                votes(0, 1),
                Some(true),
                false,
                Why::ProbesDown,
            ),
            (
                Listed,
                Unreachable,
                votes(1, 1),
                Some(false),
                false,
                Why::ProbesTied,
            ),
            (
                Listed,
                Unreachable,
                votes(1, 1),
                Some(true),
                true,
                Why::ProbesTied,
            ),
            (
                Listed,
                Unreachable,
                votes(1, 1),
                None,
                true,
                Why::ProbesTied,
            ),
            (Never, Unreachable, votes(0, 0), None, false, Why::Stale),
            (Never, Unreachable, votes(1, 0), None, true, Why::ProbesUp),
            // A site that dropped the endpoint before falling silent.
            (
                NotListed,
                Unreachable,
                votes(3, 0),
                Some(false),
                false,
                Why::SiteLastSaidDown,
            ),
            (
                NotListed,
                Stale,
                votes(3, 0),
                None,
                false,
                Why::SiteLastSaidDown,
            ),
            // Stale: without probes gone (as before); with them, they decide.
            (Listed, Stale, votes(0, 0), Some(true), false, Why::Stale),
            (Listed, Stale, votes(2, 0), Some(true), true, Why::ProbesUp),
            (
                Listed,
                Stale,
                votes(0, 2),
                Some(true),
                false,
                Why::ProbesDown,
            ),
            (
                Listed,
                Stale,
                votes(1, 1),
                Some(true),
                true,
                Why::ProbesTied,
            ),
            (Listed, Stale, votes(1, 1), None, false, Why::ProbesTied),
            (Never, Stale, votes(0, 0), None, false, Why::Stale),
        ];
        for (i, (word, dns, votes, previous, up, why)) in table.into_iter().enumerate() {
            assert_eq!(
                judge(word, dns, votes, previous),
                Verdict { up, why },
                "row {i}: {word:?} {dns:?} {votes:?} previous {previous:?}"
            );
        }
    }

    /// Two sites: one vantage point each side. This node's probe alone
    /// decides once the other site's DNS node is silent.
    #[test]
    fn two_sites_one_vantage_point_each() {
        let mine = |up: bool| if up { votes(1, 0) } else { votes(0, 1) };
        assert!(judge(Listed, Unreachable, mine(true), Some(true)).up);
        assert!(!judge(Listed, Unreachable, mine(false), Some(true)).up);
        // The other site's DNS answers again: its word wins over my probe.
        assert!(judge(Listed, Reachable, mine(false), Some(false)).up);
    }
}
