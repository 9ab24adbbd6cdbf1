//! HTTP routing as a pure function: `Host` → virtual host → the matching rule by Gateway API precedence → a weighted backend.
//!
//! A table is compiled once per snapshot; `find` takes only what a request
//! says (host, method, path, query, headers), so it is tested with tables of
//! cases and no sockets. The backend type is generic for the same reason.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::config::{PathMatchType, RouteMatch, VirtualHost};

/// Why a request has no backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No virtual host serves the request's host.
    NoHost,
    /// The host is served, but no rule matches (GAMMA: rejected).
    NoRule,
}

/// What routing looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `Host` header or URI authority, possibly with a port.
    pub host: &'a str,
    /// The method.
    pub method: &'a Method,
    /// The path, without query.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// The routes of one listener, compiled.
#[derive(Debug)]
pub struct RouteTable<B> {
    by_host: HashMap<String, usize>,
    wildcard: Option<usize>,
    vhosts: Vec<CompiledHost>,
    rules: Vec<Rule<B>>,
}

#[derive(Debug)]
struct CompiledHost {
    /// Every match of every rule, in precedence order, with the index of its rule.
    candidates: Vec<(Matcher, usize)>,
}

/// A rule's outcome: where its requests go.
#[derive(Debug)]
pub struct Rule<B> {
    backends: Vec<(B, u32)>,
    total_weight: u64,
    /// The rule's request timeout, overriding the listener's.
    pub timeout: Option<Duration>,
}

impl<B> Rule<B> {
    /// A backend chosen by weight, or `None` when every weight is 0.
    pub fn pick(&self, random: impl FnOnce(usize) -> usize) -> Option<&B> {
        if self.backends.len() == 1 {
            return self
                .backends
                .first()
                .filter(|(_, w)| *w > 0)
                .map(|(b, _)| b);
        }
        if self.total_weight == 0 {
            return None;
        }
        let mut ticket = random(self.total_weight as usize) as u64;
        for (backend, weight) in &self.backends {
            let weight = u64::from(*weight);
            if ticket < weight {
                return Some(backend);
            }
            ticket -= weight;
        }
        None
    }
}

#[derive(Debug, Clone)]
struct Matcher {
    path: PathMatcher,
    method: Option<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
    query: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum PathMatcher {
    Exact(String),
    /// Stored without a trailing slash; empty means "/" (everything).
    Prefix(String),
}

impl Matcher {
    fn compile(m: &RouteMatch) -> Self {
        let path = match &m.path {
            None => PathMatcher::Prefix(String::new()),
            Some(p) => match p.kind {
                PathMatchType::Exact => PathMatcher::Exact(p.value.clone()),
                PathMatchType::PathPrefix => {
                    PathMatcher::Prefix(p.value.trim_end_matches('/').to_string())
                }
            },
        };
        Self {
            path,
            method: m
                .method
                .as_deref()
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok()),
            headers: m
                .headers
                .iter()
                .filter_map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
                    let value = HeaderValue::from_str(&h.value).ok()?;
                    Some((name, value))
                })
                .collect(),
            query: m
                .query_params
                .iter()
                .map(|q| (q.name.clone(), q.value.clone()))
                .collect(),
        }
    }

    /// Gateway API precedence, highest first: exact path, longer prefix,
    /// a method, more header matches, more query matches.
    fn precedence(&self) -> (bool, usize, bool, usize, usize) {
        let (exact, len) = match &self.path {
            PathMatcher::Exact(p) => (true, p.len()),
            PathMatcher::Prefix(p) => (false, p.len()),
        };
        (
            exact,
            len,
            self.method.is_some(),
            self.headers.len(),
            self.query.len(),
        )
    }

    fn matches(&self, req: &RequestView<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatcher::Exact(p) => req.path == p,
            PathMatcher::Prefix(p) => {
                p.is_empty()
                    || (req.path.starts_with(p.as_str())
                        && matches!(req.path.as_bytes().get(p.len()), None | Some(b'/')))
            }
        };
        path_ok
            && self.method.as_ref().is_none_or(|m| m == req.method)
            && self
                .headers
                .iter()
                .all(|(name, value)| req.headers.get_all(name).iter().any(|v| v == value))
            && self
                .query
                .iter()
                .all(|(name, value)| query_has(req.query, name, value))
    }
}

fn query_has(query: Option<&str>, name: &str, value: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| match pair.split_once('=') {
            Some((n, v)) => n == name && v == value,
            None => pair == name && value.is_empty(),
        })
    })
}

/// The host part of a `Host` value: no port, IPv6 brackets kept.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

impl<B> RouteTable<B> {
    /// Compiles validated virtual hosts; `backend(name)` resolves a cluster name.
    pub fn compile(vhosts: &[VirtualHost], mut backend: impl FnMut(&str) -> Option<B>) -> Self {
        let mut table = Self {
            by_host: HashMap::new(),
            wildcard: None,
            vhosts: Vec::with_capacity(vhosts.len()),
            rules: Vec::new(),
        };
        for (v, vhost) in vhosts.iter().enumerate() {
            for host in &vhost.hosts {
                let host = host.to_ascii_lowercase();
                if host == "*" {
                    table.wildcard.get_or_insert(v);
                } else {
                    table.by_host.entry(host).or_insert(v);
                }
            }
            let mut candidates = Vec::new();
            for rule in &vhost.rules {
                let index = table.rules.len();
                let backends: Vec<(B, u32)> = rule
                    .backends
                    .iter()
                    .filter_map(|b| backend(&b.cluster).map(|resolved| (resolved, b.weight)))
                    .collect();
                table.rules.push(Rule {
                    total_weight: backends.iter().map(|(_, w)| u64::from(*w)).sum(),
                    backends,
                    timeout: rule.timeouts.map(|t| t.request),
                });
                if rule.matches.is_empty() {
                    candidates.push((Matcher::compile(&RouteMatch::default()), index));
                }
                for m in &rule.matches {
                    candidates.push((Matcher::compile(m), index));
                }
            }
            // Stable: equal precedence keeps config order (route age, then rule order).
            candidates.sort_by_key(|(m, _)| std::cmp::Reverse(m.precedence()));
            table.vhosts.push(CompiledHost { candidates });
        }
        table
    }

    /// The rule a request follows.
    pub fn find(&self, req: &RequestView<'_>) -> Result<&Rule<B>, Miss> {
        let host = host_without_port(req.host);
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        };
        let vhost = found
            .copied()
            .or(self.wildcard)
            .and_then(|v| self.vhosts.get(v))
            .ok_or(Miss::NoHost)?;
        vhost
            .candidates
            .iter()
            .find(|(matcher, _)| matcher.matches(req))
            .and_then(|(_, rule)| self.rules.get(*rule))
            .ok_or(Miss::NoRule)
    }
}

#[cfg(test)]
mod tests;
