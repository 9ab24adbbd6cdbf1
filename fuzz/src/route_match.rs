//! Routing: a route table and a request built from the input, the proxy's `RouteTable` against a model of Gateway API matching.
//!
//! Strings are drawn mostly from small vocabularies (so that rules and
//! requests meet often) and sometimes raw. The generated routes are kept valid
//! by construction, then checked by `validate_snapshot` as the proxy would.
//! The model states the rules of `route.rs` and `config/route.rs` plainly:
//! which virtual host a `Host` selects, what each condition accepts, which
//! matching rule wins by precedence, what prefix the rewrite then replaces,
//! and how weights pick a backend.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proxy_core::config::{
    compile_regex, validate_snapshot, Cluster, Listener, NameValue, PathMatch, PathMatchType,
    PathRewrite, PathRewriteType, RouteFilters, RouteMatch, RouteRule, RuleTimeouts, UrlRewrite,
    ValueMatchType, VirtualHost, WeightedBackend,
};
use proxy_core::policy::route::{Miss, RequestView, RouteTable, Rule};
use proxy_core::Snapshot;

const HOSTS: &[&str] = &[
    "a.example",
    "b.example",
    "A.Example",
    "[::1]",
    "10.0.0.1",
    "*",
];
const SEGMENTS: &[&str] = &["", "a", "b", "api", "v1", ".", "..", "a.b", "%2F", "A"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "PURGE", "get"];
const HEADER_NAMES: &[&str] = &["x-a", "x-b", "X-A", "content-type"];
const VALUES: &[&str] = &["1", "yes", "", "a b", "YES", "a=b", "é"];
const PATTERNS: &[&str] = &[
    "/a/.*",
    "/[a-z]+",
    "/(a|b)/[0-9]+",
    ".*",
    "/api/v[0-9]+(/.*)?",
    "",
    "yes|no",
    "[0-9]+",
    "(?i)yes",
    ".+",
];
const REWRITES: &[&str] = &["", "/", "/x", "/x/", "/new/path"];

const MAX_VHOSTS: usize = 4;
const MAX_RULES: usize = 6;
const MAX_MATCHES: usize = 4;
const MAX_CONDITIONS: usize = 3;
const MAX_BACKENDS: usize = 3;
const MAX_REQUEST_HEADERS: usize = 6;

/// A string: one of a vocabulary, or any.
#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Raw(String),
}

impl Word {
    fn get(&self, vocabulary: &[&str]) -> String {
        match self {
            Self::Known(i) => vocabulary[usize::from(*i) % vocabulary.len()].to_string(),
            Self::Raw(raw) => raw.clone(),
        }
    }
}

/// A path: segments of the vocabulary after a `/`, or any string.
#[derive(Arbitrary, Debug)]
enum PathText {
    Segments(Vec<u8>),
    Raw(String),
}

impl PathText {
    fn get(&self) -> String {
        match self {
            Self::Segments(segments) => {
                let parts: Vec<&str> = segments
                    .iter()
                    .take(6)
                    .map(|i| SEGMENTS[usize::from(*i) % SEGMENTS.len()])
                    .collect();
                format!("/{}", parts.join("/"))
            }
            Self::Raw(raw) => raw.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PathSpec {
    Exact(PathText),
    Prefix(PathText),
    Regex(Word),
}

#[derive(Arbitrary, Debug)]
struct Condition {
    name: Word,
    value: Word,
    regex: bool,
}

#[derive(Arbitrary, Debug)]
struct MatchSpec {
    path: Option<PathSpec>,
    method: Option<Word>,
    headers: Vec<Condition>,
    query: Vec<Condition>,
}

#[derive(Arbitrary, Debug)]
struct RuleSpec {
    matches: Vec<MatchSpec>,
    /// One backend per weight (at least one).
    weights: Vec<u8>,
    /// A ReplacePrefixMatch rewrite, kept only when every match is a prefix.
    rewrite: Option<Word>,
}

#[derive(Arbitrary, Debug)]
struct VHostSpec {
    hosts: Vec<Word>,
    rules: Vec<RuleSpec>,
}

#[derive(Arbitrary, Debug)]
struct RequestSpec {
    host: Word,
    port: Option<u16>,
    method: Word,
    path: PathText,
    /// Pairs joined by `&`; a pair without a value has no `=`.
    query: Option<Vec<(Word, Option<Word>)>>,
    headers: Vec<(Word, Vec<u8>, bool)>,
    /// What the weighted pick draws.
    draw: u32,
}

/// The request first: the table takes the rest of the input, however long.
#[derive(Arbitrary, Debug)]
struct Input {
    request: RequestSpec,
    vhosts: Vec<VHostSpec>,
}

pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let vhosts = build_vhosts(&input.vhosts);
    if !valid(&vhosts) {
        return;
    }
    // A rule's backends are (rule, backend) by global rule index; a rule is known
    // by its request timeout, `rule + 1` ms (its own timeout is all `Found` shows).
    let table: RouteTable<(usize, usize)> = RouteTable::compile(&vhosts, |name| {
        let (rule, backend) = name.strip_prefix('c')?.split_once('_')?;
        Some((rule.parse().ok()?, backend.parse().ok()?))
    });
    let request = build_request(&input.request);
    let view = request.view();
    let got = table.find_match(&view);
    let want = model(&vhosts, &view);
    match (got, want) {
        (Err(got), Err(want)) => assert_eq!(got, want, "{view:?}"),
        (Ok(found), Ok(want)) => {
            let rule = found
                .rule
                .timeout
                .map(|t| t.as_millis() as usize - 1)
                .unwrap_or(usize::MAX);
            assert_eq!(rule, want.rule, "wrong rule for {view:?}");
            assert_eq!(
                found.matched_prefix, want.prefix,
                "wrong matched prefix for {view:?}"
            );
            // The matched prefix is where the path's elements split.
            assert!(
                view.path.starts_with(found.matched_prefix)
                    && matches!(
                        view.path.as_bytes().get(found.matched_prefix.len()),
                        None | Some(b'/')
                    )
                    || found.matched_prefix.is_empty(),
                "{:?} does not prefix {:?}",
                found.matched_prefix,
                view.path
            );
            check_pick(
                found.rule,
                &want,
                input.request.draw,
                view.path,
                found.matched_prefix,
            );
        }
        (got, want) => panic!(
            "{view:?}: the table says {:?}, the model {:?}",
            got.map(|f| f.matched_prefix),
            want.map(|w| (w.rule, w.prefix))
        ),
    }
}

/// Weights pick a backend of the rule whose share holds the draw; its
/// ReplacePrefixMatch then swaps the matched prefix for the replacement.
fn check_pick(
    rule: &Rule<(usize, usize)>,
    want: &Want,
    draw: u32,
    path: &str,
    matched_prefix: &str,
) {
    let total: u64 = want.weights.iter().map(|&w| u64::from(w)).sum();
    let mut ticket = None;
    let picked = rule.pick_backend(|n| {
        assert_eq!(n as u64, total, "the pick draws below the total weight");
        let t = draw as usize % n;
        ticket = Some(t);
        t
    });
    let Some(backend) = picked else {
        assert_eq!(
            total, 0,
            "no backend picked from weights {:?}",
            want.weights
        );
        return;
    };
    let (rule, index) = backend.target;
    assert_eq!(rule, want.rule, "a backend of another rule");
    let weight = want.weights[index];
    assert!(weight > 0, "picked backend {index} of weight 0");
    if let Some(ticket) = ticket {
        let start: u64 = want.weights[..index].iter().map(|&w| u64::from(w)).sum();
        let ticket = ticket as u64;
        assert!(
            start <= ticket && ticket < start + u64::from(weight),
            "draw {ticket} picked backend {index} of weights {:?}",
            want.weights
        );
    }
    let edit = backend.filters.as_ref().and_then(|f| f.path.as_ref());
    assert_eq!(
        edit.is_some(),
        want.rewrite.is_some(),
        "rewrite lost or made up"
    );
    let (Some(edit), Some(replacement)) = (edit, &want.rewrite) else {
        return;
    };
    let out = edit.apply(path, matched_prefix);
    let replacement = replacement.trim_end_matches('/');
    let mut expected = format!("{replacement}{}", &path[matched_prefix.len()..]);
    if expected.is_empty() {
        expected.push('/');
    }
    assert_eq!(
        out, expected,
        "{path:?} with prefix {matched_prefix:?} rewritten by {replacement:?}"
    );
    if path.starts_with('/') {
        assert!(out.starts_with('/'), "{path:?} rewritten to {out:?}");
    }
}

/// Whether the proxy would accept these routes (with their clusters) in a snapshot.
fn valid(vhosts: &[VirtualHost]) -> bool {
    let listener: Result<Listener, _> = serde_json::from_value(serde_json::json!({
        "name": "web", "address": "127.0.0.1:0", "protocol": "http",
    }));
    let Ok(mut listener) = listener else {
        return false;
    };
    listener.routes = vhosts.to_vec();
    let mut snapshot = Snapshot::default();
    for vhost in vhosts {
        for rule in &vhost.rules {
            for backend in &rule.backends {
                let cluster: Result<Cluster, _> =
                    serde_json::from_value(serde_json::json!({ "name": backend.cluster }));
                snapshot.clusters.extend(cluster.ok());
            }
        }
    }
    snapshot.listeners.push(listener);
    validate_snapshot(&snapshot).is_ok()
}

fn build_vhosts(specs: &[VHostSpec]) -> Vec<VirtualHost> {
    let mut seen_hosts: Vec<String> = Vec::new();
    let mut next_rule = 0;
    let mut vhosts = Vec::new();
    for (v, spec) in specs.iter().take(MAX_VHOSTS).enumerate() {
        let mut hosts = Vec::new();
        for word in &spec.hosts {
            let host = word.get(HOSTS);
            let lower = host.to_ascii_lowercase();
            // What validation refuses: no host, a port or path (so no IPv6
            // literal either), a host routed twice.
            if host.is_empty() || host.contains([':', '/', ' ']) || seen_hosts.contains(&lower) {
                continue;
            }
            seen_hosts.push(lower);
            hosts.push(host);
        }
        if hosts.is_empty() {
            continue;
        }
        let mut rules = Vec::new();
        for rule in spec.rules.iter().take(MAX_RULES) {
            rules.push(build_rule(rule, next_rule));
            next_rule += 1;
        }
        vhosts.push(VirtualHost {
            name: format!("v{v}"),
            hosts,
            rules,
        });
    }
    vhosts
}

fn build_rule(spec: &RuleSpec, index: usize) -> RouteRule {
    let matches: Vec<RouteMatch> = spec
        .matches
        .iter()
        .take(MAX_MATCHES)
        .filter_map(build_match)
        .collect();
    let mut weights: Vec<u32> = spec
        .weights
        .iter()
        .take(MAX_BACKENDS)
        .map(|w| u32::from(*w % 4))
        .collect();
    if weights.is_empty() {
        weights.push(1);
    }
    let prefix_only = matches.iter().all(|m| {
        m.path
            .as_ref()
            .is_none_or(|p| p.kind == PathMatchType::PathPrefix)
    });
    let filters = spec
        .rewrite
        .as_ref()
        .map(|w| w.get(REWRITES))
        .filter(|value| prefix_only && is_rewrite_path(value))
        .map(|value| RouteFilters {
            url_rewrite: Some(UrlRewrite {
                hostname: None,
                path: Some(PathRewrite {
                    kind: PathRewriteType::ReplacePrefixMatch,
                    value,
                }),
            }),
            ..RouteFilters::default()
        });
    RouteRule {
        matches,
        backends: weights
            .iter()
            .enumerate()
            .map(|(b, &weight)| WeightedBackend {
                cluster: format!("c{index}_{b}"),
                weight,
                filters: None,
            })
            .collect(),
        timeouts: Some(RuleTimeouts {
            request: Some(Duration::from_millis(index as u64 + 1)),
            backend_request: None,
        }),
        filters,
        retry: None,
    }
}

fn is_rewrite_path(value: &str) -> bool {
    value.is_empty()
        || value.starts_with('/')
            && !value.contains(['?', '#'])
            && http::uri::PathAndQuery::try_from(value).is_ok()
}

/// A match the validator would accept, or none.
fn build_match(spec: &MatchSpec) -> Option<RouteMatch> {
    let path = match &spec.path {
        None => None,
        Some(PathSpec::Exact(text)) => Some((PathMatchType::Exact, text.get())),
        Some(PathSpec::Prefix(text)) => Some((PathMatchType::PathPrefix, text.get())),
        Some(PathSpec::Regex(word)) => Some((PathMatchType::RegularExpression, word.get(PATTERNS))),
    };
    let path = match path {
        None => None,
        Some((PathMatchType::RegularExpression, value)) => Some(PathMatch {
            kind: PathMatchType::RegularExpression,
            regex: Some(compile_regex(&value).ok()?),
            value,
        }),
        Some((kind, value)) if value.starts_with('/') => Some(PathMatch {
            kind,
            value,
            regex: None,
        }),
        Some(_) => return None,
    };
    let method = match &spec.method {
        None => None,
        Some(word) => {
            let method = word.get(METHODS);
            if method.is_empty() || Method::from_bytes(method.as_bytes()).is_err() {
                return None;
            }
            Some(method)
        }
    };
    let condition = |c: &Condition, names: &[&str], header: bool| -> Option<NameValue> {
        let name = c.name.get(names);
        let value = c.value.get(if c.regex { PATTERNS } else { VALUES });
        if header && HeaderName::from_bytes(name.as_bytes()).is_err() {
            return None;
        }
        if c.regex {
            return Some(NameValue {
                name,
                kind: ValueMatchType::RegularExpression,
                regex: Some(compile_regex(&value).ok()?),
                value,
            });
        }
        if header && HeaderValue::from_str(&value).is_err() {
            return None;
        }
        Some(NameValue {
            name,
            value,
            kind: ValueMatchType::Exact,
            regex: None,
        })
    };
    let headers = spec
        .headers
        .iter()
        .take(MAX_CONDITIONS)
        .map(|c| condition(c, HEADER_NAMES, true))
        .collect::<Option<Vec<_>>>()?;
    let query_params = spec
        .query
        .iter()
        .take(MAX_CONDITIONS)
        .map(|c| condition(c, SEGMENTS, false))
        .collect::<Option<Vec<_>>>()?;
    Some(RouteMatch {
        path,
        headers,
        query_params,
        method,
    })
}

struct Request {
    host: String,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

impl Request {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: &self.host,
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }
}

fn build_request(spec: &RequestSpec) -> Request {
    let mut host = spec.host.get(HOSTS);
    if let Some(port) = spec.port {
        host = format!("{host}:{port}");
    }
    let method = Method::from_bytes(spec.method.get(METHODS).as_bytes()).unwrap_or(Method::GET);
    let query = spec.query.as_ref().map(|pairs| {
        pairs
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{}={}", name.get(SEGMENTS), value.get(VALUES)),
                None => name.get(SEGMENTS),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let mut headers = HeaderMap::new();
    for (name, value, raw) in spec.headers.iter().take(MAX_REQUEST_HEADERS) {
        let Ok(name) = HeaderName::from_bytes(name.get(HEADER_NAMES).as_bytes()) else {
            continue;
        };
        // Raw values reach bytes that are not UTF-8, which hyper lets through.
        let value = if *raw {
            HeaderValue::from_bytes(value)
        } else {
            let known = VALUES[value.first().map_or(0, |&i| usize::from(i)) % VALUES.len()];
            HeaderValue::from_str(known)
        };
        if let Ok(value) = value {
            headers.append(name, value);
        }
    }
    Request {
        host,
        method,
        path: spec.path.get(),
        query,
        headers,
    }
}

/// What the model expects of a request that has a rule.
#[derive(Debug)]
struct Want {
    rule: usize,
    prefix: String,
    weights: Vec<u32>,
    rewrite: Option<String>,
}

/// Gateway API routing, stated plainly.
fn model(vhosts: &[VirtualHost], req: &RequestView<'_>) -> Result<Want, Miss> {
    let host = host_of(req.host).to_ascii_lowercase();
    let named = vhosts
        .iter()
        .position(|v| v.hosts.iter().any(|h| h.to_ascii_lowercase() == host));
    let wildcard = vhosts.iter().position(|v| v.hosts.iter().any(|h| h == "*"));
    let v = named.or(wildcard).ok_or(Miss::NoHost)?;
    let first_rule: usize = vhosts[..v].iter().map(|v| v.rules.len()).sum();
    let catch_all = [RouteMatch::default()];
    // The best matching condition so far: its precedence, rule and prefix.
    let mut best: Option<(Precedence, usize, String)> = None;
    for (r, rule) in vhosts[v].rules.iter().enumerate() {
        let matches = if rule.matches.is_empty() {
            &catch_all[..]
        } else {
            &rule.matches[..]
        };
        for m in matches {
            if !matches_request(m, req) {
                continue;
            }
            let precedence = precedence(m);
            // Ties keep the earlier rule (config order).
            if best.as_ref().is_none_or(|(p, _, _)| precedence > *p) {
                best = Some((precedence, first_rule + r, prefix_of(m)));
            }
        }
    }
    let (_, rule, prefix) = best.ok_or(Miss::NoRule)?;
    let config = &vhosts[v].rules[rule - first_rule];
    Ok(Want {
        rule,
        prefix,
        weights: config.backends.iter().map(|b| b.weight).collect(),
        rewrite: config
            .filters
            .as_ref()
            .and_then(|f| f.url_rewrite.as_ref())
            .and_then(|u| u.path.as_ref())
            .map(|p| p.value.clone()),
    })
}

/// A `Host` without its port; IPv6 brackets kept, an empty port is no port.
fn host_of(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Exact, then RegularExpression, then PathPrefix (longer first); then a
/// method; then more header matches; then more query matches.
type Precedence = (u8, usize, bool, usize, usize);

fn precedence(m: &RouteMatch) -> Precedence {
    let (rank, len) = match &m.path {
        None => (0, 0),
        Some(p) => match p.kind {
            PathMatchType::PathPrefix => (0, p.value.trim_end_matches('/').len()),
            PathMatchType::RegularExpression => (1, 0),
            PathMatchType::Exact => (2, p.value.len()),
        },
    };
    (
        rank,
        len,
        m.method.is_some(),
        m.headers.len(),
        m.query_params.len(),
    )
}

fn prefix_of(m: &RouteMatch) -> String {
    match &m.path {
        Some(p) if p.kind == PathMatchType::PathPrefix => p.value.trim_end_matches('/').to_string(),
        _ => String::new(),
    }
}

fn matches_request(m: &RouteMatch, req: &RequestView<'_>) -> bool {
    let path_ok = match &m.path {
        None => true,
        Some(p) => match p.kind {
            PathMatchType::Exact => req.path == p.value,
            // Whole elements: `/a` matches `/a` and `/a/b`, not `/ab`; `/` matches all.
            PathMatchType::PathPrefix => {
                let prefix = p.value.trim_end_matches('/');
                prefix.is_empty()
                    || req.path == prefix
                    || req.path.starts_with(&format!("{prefix}/"))
            }
            PathMatchType::RegularExpression => {
                p.regex.as_ref().is_some_and(|r| whole(r, req.path))
            }
        },
    };
    let method_ok = m
        .method
        .as_ref()
        .is_none_or(|method| method.as_bytes() == req.method.as_str().as_bytes());
    let headers_ok = m.headers.iter().all(|wanted| {
        req.headers.iter().any(|(name, value)| {
            name.as_str().eq_ignore_ascii_case(&wanted.name)
                && match &wanted.regex {
                    // A value that is not UTF-8 matches no expression.
                    Some(regex) => {
                        std::str::from_utf8(value.as_bytes()).is_ok_and(|v| whole(regex, v))
                    }
                    None => value.as_bytes() == wanted.value.as_bytes(),
                }
        })
    });
    let query_ok = m.query_params.iter().all(|wanted| {
        req.query.is_some_and(|query| {
            query.split('&').any(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                name == wanted.name
                    && match &wanted.regex {
                        Some(regex) => whole(regex, value),
                        None => value == wanted.value,
                    }
            })
        })
    });
    path_ok && method_ok && headers_ok && query_ok
}

/// Whether an expression of the config (compiled to match whole values) matches `text`.
fn whole(regex: &regex::Regex, text: &str) -> bool {
    regex.is_match(text)
}
