//! What a listener would do with a request, and why: [`plan`] run on a request described
//! in words, with the virtual host, rule, match and authorization policy behind its answer.
//!
//! This is for operators (`meshpy explain`), never on the request path: it compiles the
//! listener's policy from a snapshot with the code the proxy uses
//! ([`ListenerPolicy::compile`]) and asks [`plan`] itself, so the answer is the proxy's.
//! Instead of one weighted draw it lists every backend of the rule with its weight, and
//! the path each would be sent with. [`RouteTable::trail`](crate::policy::route::RouteTable::trail)
//! says why each match of higher precedence did not hold.

use std::fmt;
use std::str::FromStr;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{json, Value};

use crate::config::{ListenerProtocol, RouteFilters, RouteRule, Snapshot};
use crate::policy::authz::{Decider, Decision};
use crate::policy::plan::{plan, Ask, ListenerPolicy, Plan, Refusal, Target};
use crate::policy::route::{Condition, Found, Miss, RequestView, Trail};

/// A request, as an operator describes it.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// `Host` as the client sends it (a port is ignored).
    pub host: &'a str,
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The request target: a path starting with `/`, with or without a query.
    pub target: &'a str,
    /// More request headers, by name and value; `Host` is `host`.
    pub headers: &'a [(String, String)],
    /// The caller's verified SPIFFE ID, as an mTLS connection would give it.
    pub identity: Option<&'a str>,
}

/// A question that is no request: its message says which part and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuestion(pub String);

impl fmt::Display for BadQuestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadQuestion {}

/// What the listener named `listener` of `snapshot` (validated) does with the request,
/// as JSON: `path` (as planned: normalised on a listener that authorizes), `authorization`
/// (null without one), `route` (its cluster, or the virtual host, the matches tried and the
/// winner), `refused` (the status, reason and detail the client would get, or null), and
/// for a request that goes on its `backends`, timeouts, `retry` and mirrors.
pub fn explain(
    snapshot: &Snapshot,
    listener: &str,
    question: &Question<'_>,
) -> Result<Value, BadQuestion> {
    let cfg = snapshot
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .ok_or_else(|| BadQuestion(format!("the snapshot has no listener {listener:?}")))?;
    if cfg.protocol != ListenerProtocol::Http {
        return Err(BadQuestion(format!(
            "listener {listener:?} is a TCP listener: it has no requests to explain"
        )));
    }
    let method = Method::from_str(question.method)
        .map_err(|_| BadQuestion(format!("{:?} is not an HTTP method", question.method)))?;
    let target = PathAndQuery::from_str(question.target)
        .ok()
        .filter(|target| target.path().starts_with('/'))
        .ok_or_else(|| {
            BadQuestion(format!(
                "{:?} is not a request path (it starts with '/')",
                question.target
            ))
        })?;
    let headers = header_map(question.headers)?;
    let policy = ListenerPolicy::compile(cfg, |name| Some(name.to_string()));
    let path = match policy.request_path(target.path()) {
        Ok(path) => path,
        Err(err) => {
            return Ok(json!({
                "listener": listener,
                "path": target.path(),
                "authorization": null,
                "route": null,
                "refused": refused(&err),
            }))
        }
    };
    let ask = Ask {
        request: RequestView {
            host: question.host,
            method: &method,
            path: &path,
            query: target.query(),
            headers: &headers,
        },
        identity: question.identity,
    };
    let mut audited = Vec::new();
    // The draw is not used: every backend of the rule is listed.
    let planned = plan(&ask, &policy, |_| 0, |index| audited.push(index));
    let decision = match &planned {
        Ok(plan) => plan.authz,
        Err(Refusal::Unauthorized(decision)) => Some(*decision),
        Err(_) => None,
    };
    let authorization = cfg.authorization.as_ref().map(|authz| {
        let name = |index: usize| authz.policies.get(index).map(|p| p.name.as_str());
        json!({
            "default": authz.default,
            "audited": audited.iter().filter_map(|&i| name(i)).collect::<Vec<_>>(),
            "decision": decision.map(|d| decision_json(&d, name)),
        })
    });
    let route = match &policy.target {
        Target::Cluster(cluster) => json!({"cluster": cluster}),
        // Authorization refuses before routing: a refused caller learns nothing of routes.
        Target::Routes(_) if matches!(planned, Err(Refusal::Unauthorized(_))) => Value::Null,
        Target::Routes(table) => trail_json(cfg.routes.as_slice(), table.trail(&ask.request)),
    };
    let mut out = json!({
        "listener": listener,
        "path": path,
        "authorization": authorization,
        "route": route,
        "refused": null,
    });
    match planned {
        Err(refusal) => out["refused"] = refused(&refusal.error(&ask.request)),
        Ok(plan) => {
            let rule = plan
                .route
                .as_ref()
                .and_then(|found| rule_config(cfg.routes.as_slice(), found));
            merge(&mut out, forwarded(&plan, rule, &path));
        }
    }
    Ok(out)
}

fn header_map(pairs: &[(String, String)]) -> Result<HeaderMap, BadQuestion> {
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BadQuestion(format!("{name:?} is not a header name")))?;
        if name == http::header::HOST {
            return Err(BadQuestion(
                "the host is given apart, not as a header".to_string(),
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| BadQuestion(format!("the value of {name} is not a header value")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn refused(err: &crate::error::ProxyError) -> Value {
    json!({
        "status": err.status().as_u16(),
        "reason": err.reason(),
        "detail": err.to_string(),
    })
}

fn decision_json<'a>(decision: &Decision, name: impl Fn(usize) -> Option<&'a str>) -> Value {
    let (by, policy) = match decision.by {
        Decider::Policy(index) => ("policy", name(index)),
        Decider::NoAllowMatch => ("no_allow_match", None),
        Decider::Default => ("default", None),
    };
    json!({
        "allowed": decision.allowed,
        "by": by,
        "policy": policy,
        "rule": decision.rule,
    })
}

fn trail_json(vhosts: &[crate::config::VirtualHost], trail: Result<Trail, Miss>) -> Value {
    let trail = match trail {
        Ok(trail) => trail,
        Err(_) => return json!({"virtual_host": null, "tried": [], "matched": null}),
    };
    let tried: Vec<Value> = trail
        .tried
        .iter()
        .map(|tried| {
            json!({
                "rule": tried.at.rule,
                "match": tried.at.matched,
                "failed": tried.failed.map(condition_json),
            })
        })
        .collect();
    let matched = trail
        .tried
        .last()
        .filter(|tried| tried.failed.is_none())
        .map(|tried| json!({"rule": tried.at.rule, "match": tried.at.matched}));
    json!({
        "virtual_host": vhosts.get(trail.vhost).map(|v| v.name.as_str()),
        "tried": tried,
        "matched": matched,
    })
}

fn condition_json(condition: Condition) -> Value {
    match condition {
        Condition::Path => json!({"condition": "path"}),
        Condition::Method => json!({"condition": "method"}),
        Condition::Header(index) => json!({"condition": "header", "index": index}),
        Condition::Query(index) => json!({"condition": "query", "index": index}),
    }
}

fn rule_config<'c, C>(
    vhosts: &'c [crate::config::VirtualHost],
    found: &Found<'_, C>,
) -> Option<&'c RouteRule> {
    vhosts.get(found.at.vhost)?.rules.get(found.at.rule)
}

/// Where a planned request goes: every backend of its rule (or the listener's cluster)
/// with its weight and the path and host it is sent with, its timeouts, retries, mirrors.
fn forwarded(plan: &Plan<'_, String>, rule: Option<&RouteRule>, path: &str) -> Value {
    let backends: Vec<Value> = match &plan.route {
        None => vec![json!({
            "cluster": plan.cluster,
            "weight": 1,
            "path": path,
            "host": null,
            "mirrors": [],
        })],
        Some(found) => found
            .rule
            .backends()
            .iter()
            .enumerate()
            .map(|(b, backend)| {
                let filters = backend.filters.as_ref();
                let sent_path = filters.and_then(|f| f.path.as_ref()).map_or_else(
                    || path.to_string(),
                    |edit| edit.apply(path, found.matched_prefix),
                );
                let host = filters
                    .and_then(|f| f.hostname.as_ref())
                    .and_then(|h| h.to_str().ok());
                let own = rule
                    .and_then(|r| r.backends.get(b))
                    .and_then(|b| b.filters.as_ref());
                json!({
                    "cluster": backend.target,
                    "weight": backend.weight(),
                    "path": sent_path,
                    "host": host,
                    "mirrors": mirrors(rule.and_then(|r| r.filters.as_ref()), own),
                })
            })
            .collect(),
    };
    let retry = plan
        .retry
        .and(rule.and_then(|r| r.retry.as_ref()))
        .map(|retry| {
            json!({
                "attempts": retry.attempts,
                "codes": retry.codes,
                "backoff_ms": retry.backoff.as_millis() as u64,
            })
        });
    json!({
        "backends": backends,
        "timeout_ms": plan.timeout.as_millis() as u64,
        "backend_timeout_ms": plan.backend_timeout.map(|t| t.as_millis() as u64),
        "retry": retry,
    })
}

/// A backend's mirrors, as routing compiles them: the rule's, then the backend's own.
fn mirrors(rule: Option<&RouteFilters>, backend: Option<&RouteFilters>) -> Vec<Value> {
    [rule, backend]
        .into_iter()
        .flatten()
        .filter_map(|f| f.request_mirror.as_ref())
        .map(|m| json!({"cluster": m.cluster, "percent": m.percent}))
        .collect()
}

fn merge(out: &mut Value, more: Value) {
    if let (Some(out), Value::Object(more)) = (out.as_object_mut(), more) {
        out.extend(more);
    }
}

#[cfg(test)]
mod tests;
