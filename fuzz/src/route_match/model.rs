//! Gateway API routing stated plainly: the virtual host, the conditions, precedence, the prefix.

use proxy_core::config::{PathMatchType, RouteMatch, VirtualHost};
use proxy_core::policy::route::{Miss, RequestView};

/// What the model expects of a request that has a rule.
#[derive(Debug)]
pub(super) struct Want {
    pub(super) rule: usize,
    pub(super) prefix: String,
    pub(super) weights: Vec<u32>,
    pub(super) rewrite: Option<String>,
}

/// Gateway API routing, stated plainly.
pub(super) fn model(vhosts: &[VirtualHost], req: &RequestView<'_>) -> Result<Want, Miss> {
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
