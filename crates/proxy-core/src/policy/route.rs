//! HTTP routing as a pure function: `Host` → virtual host → the matching rule by Gateway API precedence → a weighted backend.
//!
//! A table is compiled once per snapshot (regular expressions included, compiled
//! when the snapshot was parsed); `find` takes only what a request says (host,
//! method, path, query, headers), so it is tested with tables of cases and no
//! sockets. The backend type is generic for the same reason.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regex::Regex;

use crate::config::{NameValue, PathMatchType, RouteMatch, ValueMatchType, VirtualHost};
use crate::policy::filters::Filters;
use crate::policy::retry::RetryPolicy;
use crate::rng::Chance;

/// Why a request has no backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No virtual host serves the request's host.
    NoHost,
    /// The host is served, but no rule matches (GAMMA: rejected).
    NoRule,
}

/// Where a match sits in the listener's config: what explains a routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedAt {
    /// The virtual host's index in the listener's `routes`.
    pub vhost: usize,
    /// The rule's index in the virtual host's `rules`.
    pub rule: usize,
    /// The match's index in the rule's `matches`; `None` for a rule without matches,
    /// which matches every request.
    pub matched: Option<usize>,
}

/// The part of a match that a request does not meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The path condition.
    Path,
    /// The method.
    Method,
    /// The header condition at this index of the match's `headers`.
    Header(usize),
    /// The query parameter condition at this index of the match's `query_params`.
    Query(usize),
}

/// A match that routing tried, in precedence order, and what of it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tried {
    /// Which match it is.
    pub at: MatchedAt,
    /// The first condition the request does not meet; `None` for the match that won.
    pub failed: Option<Condition>,
}

/// How routing went through a virtual host's matches for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    /// The index of the virtual host that serves the request's host.
    pub vhost: usize,
    /// The matches tried, in precedence order, up to and including the one that won
    /// (all of them, each failed, when none did).
    pub tried: Vec<Tried>,
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
    /// Every match of every rule, in precedence order.
    candidates: Vec<Candidate>,
}

#[derive(Debug)]
struct Candidate {
    matcher: Matcher,
    /// The index of its rule in the table's `rules`.
    rule: usize,
    /// Where it is in the config.
    at: MatchedAt,
}

/// A backend of a rule: where to send, its share, and the filters on the way.
#[derive(Debug)]
pub struct Backend<B> {
    /// The resolved backend (a cluster, in the proxy).
    pub target: B,
    weight: u32,
    /// The rule's filters followed by the backend's own; `None` when there are none.
    pub filters: Option<Filters>,
    /// Where copies of requests go: the rule's mirror, then the backend's.
    pub mirrors: Vec<Mirror<B>>,
}

/// A RequestMirror filter, resolved.
#[derive(Debug)]
pub struct Mirror<B> {
    /// The cluster that gets the copies.
    pub target: B,
    /// The share of requests copied.
    pub chance: Chance,
}

/// A rule's outcome: where its requests go.
#[derive(Debug)]
pub struct Rule<B> {
    backends: Vec<Backend<B>>,
    total_weight: u64,
    /// The rule's request timeout (all of a request), overriding the listener's.
    pub timeout: Option<Duration>,
    /// The rule's backend request timeout (one request to an endpoint).
    pub backend_timeout: Option<Duration>,
    /// The rule's retries.
    pub retry: Option<RetryPolicy>,
}

impl<B> Backend<B> {
    /// Its proportional weight; 0 sends nothing.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

impl<B> Rule<B> {
    /// Every backend, weight 0 included, in config order.
    pub fn backends(&self) -> &[Backend<B>] {
        &self.backends
    }

    /// The sum of the backends' weights: a backend's share is its weight over this.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// A backend chosen by weight, or `None` when every weight is 0.
    pub fn pick(&self, random: impl FnOnce(usize) -> usize) -> Option<&B> {
        self.pick_backend(random).map(|b| &b.target)
    }

    /// A backend, with its filters, chosen by weight; `None` when every weight is 0.
    pub fn pick_backend(&self, random: impl FnOnce(usize) -> usize) -> Option<&Backend<B>> {
        if self.backends.len() == 1 {
            return self.backends.first().filter(|b| b.weight > 0);
        }
        if self.total_weight == 0 {
            return None;
        }
        let mut ticket = random(self.total_weight as usize) as u64;
        for backend in &self.backends {
            let weight = u64::from(backend.weight);
            if ticket < weight {
                return Some(backend);
            }
            ticket -= weight;
        }
        None
    }
}

/// The rule a request follows, and what matched it.
#[derive(Debug)]
pub struct Found<'a, B> {
    /// The rule.
    pub rule: &'a Rule<B>,
    /// The PathPrefix that matched, without a trailing `/` (empty for `/`, and for
    /// Exact and RegularExpression matches): what ReplacePrefixMatch replaces.
    pub matched_prefix: &'a str,
    /// Where the match that won is in the config.
    pub at: MatchedAt,
}

#[derive(Debug, Clone)]
struct Matcher {
    path: PathMatcher,
    method: Option<Method>,
    headers: Vec<(HeaderName, ValueMatcher<HeaderValue>)>,
    query: Vec<(String, ValueMatcher<String>)>,
}

#[derive(Debug, Clone)]
enum PathMatcher {
    Exact(String),
    /// Stored without a trailing slash; empty means "/" (everything).
    Prefix(String),
    /// Anchored at both ends: the whole path must match.
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum ValueMatcher<T> {
    Exact(T),
    /// Anchored at both ends: the whole value must match.
    Regex(Regex),
}

fn value_matcher<T>(
    nv: &NameValue,
    exact: impl FnOnce(&str) -> Option<T>,
) -> Option<ValueMatcher<T>> {
    match (nv.kind, &nv.regex) {
        (ValueMatchType::RegularExpression, Some(regex)) => {
            Some(ValueMatcher::Regex(regex.clone()))
        }
        // Parsing compiles every regular expression; an uncompiled one cannot get here.
        (ValueMatchType::RegularExpression, None) => None,
        (ValueMatchType::Exact, _) => exact(&nv.value).map(ValueMatcher::Exact),
    }
}

/// How a path condition ranks in Gateway API precedence: Exact, then
/// RegularExpression, then PathPrefix (longer first). The spec leaves expressions
/// unranked; below every prefix, any catch-all rule ("/", or a match without a path)
/// would hide them all, so they come right after exact paths, as in Envoy Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathRank {
    Prefix,
    Regex,
    Exact,
}

impl Matcher {
    fn compile(m: &RouteMatch) -> Option<Self> {
        let path = match &m.path {
            None => PathMatcher::Prefix(String::new()),
            Some(p) => match p.kind {
                PathMatchType::Exact => PathMatcher::Exact(p.value.clone()),
                PathMatchType::PathPrefix => {
                    PathMatcher::Prefix(p.value.trim_end_matches('/').to_string())
                }
                PathMatchType::RegularExpression => PathMatcher::Regex(p.regex.clone()?),
            },
        };
        let mut headers = Vec::with_capacity(m.headers.len());
        for h in &m.headers {
            let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            headers.push((name, value_matcher(h, |v| HeaderValue::from_str(v).ok())?));
        }
        let mut query = Vec::with_capacity(m.query_params.len());
        for q in &m.query_params {
            query.push((q.name.clone(), value_matcher(q, |v| Some(v.to_string()))?));
        }
        Some(Self {
            path,
            method: m
                .method
                .as_deref()
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok()),
            headers,
            query,
        })
    }

    /// Gateway API precedence, highest first: exact path, a regular expression, longer
    /// prefix; a method; more header matches; more query matches.
    fn precedence(&self) -> (PathRank, usize, bool, usize, usize) {
        let (rank, len) = match &self.path {
            PathMatcher::Exact(p) => (PathRank::Exact, p.len()),
            PathMatcher::Prefix(p) => (PathRank::Prefix, p.len()),
            PathMatcher::Regex(_) => (PathRank::Regex, 0),
        };
        (
            rank,
            len,
            self.method.is_some(),
            self.headers.len(),
            self.query.len(),
        )
    }

    /// The first condition `req` does not meet, in the order they are checked; `None`
    /// when the request matches.
    fn failed(&self, req: &RequestView<'_>) -> Option<Condition> {
        let path_ok = match &self.path {
            PathMatcher::Exact(p) => req.path == p,
            PathMatcher::Prefix(p) => {
                p.is_empty()
                    || (req.path.starts_with(p.as_str())
                        && matches!(req.path.as_bytes().get(p.len()), None | Some(b'/')))
            }
            PathMatcher::Regex(regex) => regex.is_match(req.path),
        };
        if !path_ok {
            return Some(Condition::Path);
        }
        if self.method.as_ref().is_some_and(|m| m != req.method) {
            return Some(Condition::Method);
        }
        let header_missing = self.headers.iter().position(|(name, wanted)| {
            !req.headers.get_all(name).iter().any(|v| match wanted {
                ValueMatcher::Exact(value) => v == value,
                // A value that is not UTF-8 matches no expression. (`to_str` would
                // also refuse UTF-8 beyond visible ASCII, such as `é`.)
                ValueMatcher::Regex(regex) => {
                    std::str::from_utf8(v.as_bytes()).is_ok_and(|v| regex.is_match(v))
                }
            })
        });
        if let Some(index) = header_missing {
            return Some(Condition::Header(index));
        }
        self.query
            .iter()
            .position(|(name, wanted)| !query_has(req.query, name, wanted))
            .map(Condition::Query)
    }

    fn matched_prefix(&self) -> &str {
        match &self.path {
            PathMatcher::Prefix(p) => p,
            PathMatcher::Exact(_) | PathMatcher::Regex(_) => "",
        }
    }
}

fn query_has(query: Option<&str>, name: &str, wanted: &ValueMatcher<String>) -> bool {
    let value_ok = |v: &str| match wanted {
        ValueMatcher::Exact(value) => v == value,
        ValueMatcher::Regex(regex) => regex.is_match(v),
    };
    query.is_some_and(|q| {
        q.split('&').any(|pair| match pair.split_once('=') {
            Some((n, v)) => n == name && value_ok(v),
            None => pair == name && value_ok(""),
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
            for (r, rule) in vhost.rules.iter().enumerate() {
                let index = table.rules.len();
                let backends: Vec<Backend<B>> = rule
                    .backends
                    .iter()
                    .filter_map(|b| {
                        let mirrors = [rule.filters.as_ref(), b.filters.as_ref()]
                            .into_iter()
                            .flatten()
                            .filter_map(|f| f.request_mirror.as_ref())
                            .filter_map(|m| {
                                Some(Mirror {
                                    target: backend(&m.cluster)?,
                                    chance: Chance::percent(m.percent),
                                })
                            })
                            .collect();
                        Some(Backend {
                            target: backend(&b.cluster)?,
                            weight: b.weight,
                            filters: Filters::compile(rule.filters.as_ref(), b.filters.as_ref()),
                            mirrors,
                        })
                    })
                    .collect();
                table.rules.push(Rule {
                    total_weight: backends.iter().map(|b| u64::from(b.weight)).sum(),
                    backends,
                    timeout: rule.timeouts.and_then(|t| t.request),
                    backend_timeout: rule.timeouts.and_then(|t| t.backend_request),
                    retry: rule.retry.as_ref().map(RetryPolicy::compile),
                });
                let at = |matched| MatchedAt {
                    vhost: v,
                    rule: r,
                    matched,
                };
                let candidate = |matcher, at| Candidate {
                    matcher,
                    rule: index,
                    at,
                };
                if rule.matches.is_empty() {
                    candidates.extend(
                        Matcher::compile(&RouteMatch::default()).map(|m| candidate(m, at(None))),
                    );
                }
                for (j, m) in rule.matches.iter().enumerate() {
                    candidates.extend(Matcher::compile(m).map(|m| candidate(m, at(Some(j)))));
                }
            }
            // Stable: equal precedence keeps config order (route age, then rule order).
            candidates.sort_by_key(|c| std::cmp::Reverse(c.matcher.precedence()));
            table.vhosts.push(CompiledHost { candidates });
        }
        table
    }

    /// The rule a request follows.
    pub fn find(&self, req: &RequestView<'_>) -> Result<&Rule<B>, Miss> {
        self.find_match(req).map(|found| found.rule)
    }

    /// The rule a request follows, with the prefix that matched it.
    pub fn find_match(&self, req: &RequestView<'_>) -> Result<Found<'_, B>, Miss> {
        let (_, vhost) = self.vhost(req.host)?;
        vhost
            .candidates
            .iter()
            .find(|candidate| candidate.matcher.failed(req).is_none())
            .and_then(|candidate| {
                Some(Found {
                    rule: self.rules.get(candidate.rule)?,
                    matched_prefix: candidate.matcher.matched_prefix(),
                    at: candidate.at,
                })
            })
            .ok_or(Miss::NoRule)
    }

    /// How [`find_match`](Self::find_match) goes through the matches for `req`, and why
    /// each one before the winner failed: for explaining a decision, not for making it.
    pub fn trail(&self, req: &RequestView<'_>) -> Result<Trail, Miss> {
        let (index, vhost) = self.vhost(req.host)?;
        let mut tried = Vec::new();
        for candidate in &vhost.candidates {
            let failed = candidate.matcher.failed(req);
            tried.push(Tried {
                at: candidate.at,
                failed,
            });
            if failed.is_none() {
                break;
            }
        }
        Ok(Trail {
            vhost: index,
            tried,
        })
    }

    /// The virtual host serving `host` (port ignored, any case), with its index.
    fn vhost(&self, host: &str) -> Result<(usize, &CompiledHost), Miss> {
        let host = host_without_port(host);
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        };
        found
            .copied()
            .or(self.wildcard)
            .and_then(|v| Some((v, self.vhosts.get(v)?)))
            .ok_or(Miss::NoHost)
    }
}

#[cfg(test)]
mod tests;
