//! Routes and a request built from the fuzzer's input, kept to what the proxy accepts.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proxy_core::config::{
    compile_regex, validate_snapshot, Cluster, Listener, NameValue, PathMatch, PathMatchType,
    PathRewrite, PathRewriteType, RouteFilters, RouteMatch, RouteRule, RuleTimeouts, UrlRewrite,
    ValueMatchType, VirtualHost, WeightedBackend,
};
use proxy_core::policy::route::RequestView;
use proxy_core::Snapshot;

use super::{
    Condition, MatchSpec, PathSpec, RequestSpec, RuleSpec, VHostSpec, HEADER_NAMES, HOSTS,
    MAX_BACKENDS, MAX_CONDITIONS, MAX_MATCHES, MAX_REQUEST_HEADERS, MAX_RULES, MAX_VHOSTS, METHODS,
    PATTERNS, REWRITES, SEGMENTS, VALUES,
};

/// Whether the proxy would accept these routes (with their clusters) in a snapshot.
pub(super) fn valid(vhosts: &[VirtualHost]) -> bool {
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

pub(super) fn build_vhosts(specs: &[VHostSpec]) -> Vec<VirtualHost> {
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

pub(super) struct Request {
    host: String,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

impl Request {
    pub(super) fn view(&self) -> RequestView<'_> {
        RequestView {
            host: &self.host,
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }
}

pub(super) fn build_request(spec: &RequestSpec) -> Request {
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
