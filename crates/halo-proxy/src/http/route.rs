//! Host and path routing of one HTTP listener.
//!
//! Order: routes for the exact host, then wildcard routes from the longest
//! suffix to the shortest, then routes without a host, then `default_pool`.
//! Within each, the longest matching `path_prefix` wins; a level with no
//! matching prefix falls through to the next.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use halo_config::{HostPattern, Listener};

use crate::pool::PoolRuntime;

/// Path prefixes, longest first, each with its pool.
type Prefixes = Vec<(String, Arc<PoolRuntime>)>;

/// The compiled routing table.
#[derive(Debug, Default)]
pub(crate) struct Router {
    exact: HashMap<String, Prefixes>,
    /// (suffix with its leading dot, prefixes), longest suffix first.
    wildcard: Vec<(String, Prefixes)>,
    any_host: Prefixes,
    default: Option<Arc<PoolRuntime>>,
}

impl Router {
    pub(crate) fn build(listener: &Listener, pools: &HashMap<String, Arc<PoolRuntime>>) -> Self {
        let mut r = Self {
            default: listener
                .default_pool
                .as_ref()
                .and_then(|p| pools.get(p))
                .cloned(),
            ..Self::default()
        };
        for route in &listener.routes {
            let Some(pool) = pools.get(&route.pool) else {
                continue; // validation guarantees it exists
            };
            let entry = (route.path_prefix.clone(), Arc::clone(pool));
            match &route.host {
                Some(HostPattern::Exact(h)) => r.exact.entry(h.clone()).or_default().push(entry),
                Some(HostPattern::Wildcard(suffix)) => {
                    match r.wildcard.iter_mut().find(|(s, _)| s == suffix) {
                        Some((_, prefixes)) => prefixes.push(entry),
                        None => r.wildcard.push((suffix.clone(), vec![entry])),
                    }
                }
                None => r.any_host.push(entry),
            }
        }
        let longest_first = |p: &mut Prefixes| p.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        r.exact.values_mut().for_each(longest_first);
        r.wildcard.iter_mut().for_each(|(_, p)| longest_first(p));
        longest_first(&mut r.any_host);
        r.wildcard.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        r
    }

    /// The pool used when nothing else matches (the only one in TCP mode).
    pub(crate) fn default_pool(&self) -> Option<&Arc<PoolRuntime>> {
        self.default.as_ref()
    }

    /// The pool for a request to `host` (as [`normalize_host`] returns it) and
    /// `path`.
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<&Arc<PoolRuntime>> {
        fn by_path<'a>(prefixes: &'a Prefixes, path: &str) -> Option<&'a Arc<PoolRuntime>> {
            prefixes
                .iter()
                .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                .map(|(_, pool)| pool)
        }
        if let Some(pool) = self.exact.get(host).and_then(|p| by_path(p, path)) {
            return Some(pool);
        }
        for (suffix, prefixes) in &self.wildcard {
            if host.len() > suffix.len()
                && host.ends_with(suffix.as_str())
                && let Some(pool) = by_path(prefixes, path)
            {
                return Some(pool);
            }
        }
        by_path(&self.any_host, path).or(self.default.as_ref())
    }
}

/// The host part of a Host header or URI authority: without the port or a
/// trailing dot, lower-case. Borrows when nothing needs changing.
pub(crate) fn normalize_host(raw: &str) -> Cow<'_, str> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal: [2001:db8::1]:8080
        rest.split_once(']').map_or(raw, |(inside, _)| inside)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_are_normalized() {
        for (raw, want) in [
            ("Example.COM", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("example.com.:80", "example.com"),
            ("[2001:DB8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("192.0.2.1:80", "192.0.2.1"),
            ("", ""),
        ] {
            assert_eq!(normalize_host(raw), want, "{raw}");
        }
    }
}
