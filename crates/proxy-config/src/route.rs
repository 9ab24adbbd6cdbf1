//! Config of HTTP routing: virtual hosts by `Host`, rules with matches, filters and
//! weighted backends; and weighted endpoints.
//!
//! Regular expressions are compiled here, while the snapshot is parsed, so that a bad
//! one is refused with its JSON path and a request never compiles anything.

use std::collections::HashSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::resilience::{self, RequestMirror, Retry};
use super::{check_positive, duration_str, ConfigError};
use crate::text;

/// Largest compiled size of one regular expression, in bytes: a pattern that needs more
/// (such as `(a{100}){100}`) is refused, so one route cannot make matching slow or big.
pub const MAX_REGEX_SIZE: usize = 256 * 1024;
/// Longest source of one regular expression, in characters (as the Gateway API allows).
pub const MAX_REGEX_LEN: usize = 1024;

/// A virtual host: requests whose `Host` is one of `hosts` follow its rules.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// Name for logs and stats, e.g. `payment.default`.
    pub name: String,
    /// Host names without port, matched case-insensitively; `*` matches any host.
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
    /// Rules; Gateway API precedence decides which matching rule wins.
    pub rules: Vec<RouteRule>,
}

/// A routing rule: if any match applies, the request goes to one of the backends.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Alternatives (OR); an empty list matches every request.
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    /// Clusters with proportional weights; a weight may be 0.
    #[schemars(length(min = 1))]
    pub backends: Vec<WeightedBackend>,
    /// Overrides the listener's timeouts for requests of this rule.
    #[serde(default)]
    pub timeouts: Option<RuleTimeouts>,
    /// Header changes and URL rewrites for every request of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<RouteFilters>,
    /// Retries of failed requests, within the target cluster's retry budget; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// What a rule (or one of its backends) changes in requests and responses (Gateway API filters).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteFilters {
    /// RequestHeaderModifier: headers set, added or removed before the request goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifier>,
    /// ResponseHeaderModifier: headers set, added or removed in the upstream's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifier>,
    /// URLRewrite: the host and/or path the upstream sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// RequestMirror: a copy of some requests goes to another cluster, its answer ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

/// Header changes; a name (case-insensitive) may appear in one action only.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderModifier {
    /// Replace every value of the header with this one (add it if absent).
    #[serde(default)]
    pub set: Vec<HeaderPair>,
    /// Add this value, keeping the values already there.
    #[serde(default)]
    pub add: Vec<HeaderPair>,
    /// Remove the header and all its values.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A header to set or add.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderPair {
    /// Header name, case-insensitive.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A URL rewrite.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UrlRewrite {
    /// The `Host` (HTTP/1) or `:authority` (HTTP/2) sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The new path; the query is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// How a path is rewritten.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum PathRewriteType {
    /// The whole path becomes the value.
    ReplaceFullPath,
    /// The PathPrefix that matched is replaced by the value, the rest kept.
    ReplacePrefixMatch,
}

/// A path rewrite.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathRewrite {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub kind: PathRewriteType,
    /// A path starting with `/` (or empty, for `ReplacePrefixMatch`: strip the prefix).
    pub value: String,
}

/// Conditions that must all hold (AND) for a match.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Path condition; none means any path.
    #[serde(default)]
    pub path: Option<PathMatch>,
    /// Headers that must be present with a matching value.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// Query parameters that must be present with a matching value.
    #[serde(default)]
    pub query_params: Vec<NameValue>,
    /// The request method, e.g. `GET`.
    #[serde(default)]
    pub method: Option<String>,
}

/// How a path is matched.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum PathMatchType {
    /// The whole path equals the value.
    Exact,
    /// The path starts with the value, element by element (`/a` matches `/a/b`, not `/ab`).
    PathPrefix,
    /// The whole path matches the value, a regular expression (Rust `regex` syntax).
    RegularExpression,
}

/// A path condition.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(try_from = "RawPathMatch", into = "RawPathMatch")]
pub struct PathMatch {
    /// `Exact`, `PathPrefix` or `RegularExpression`.
    pub kind: PathMatchType,
    /// An absolute path starting with `/`, or a regular expression.
    pub value: String,
    /// The compiled expression of a `RegularExpression` match.
    pub regex: Option<regex::Regex>,
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.value == other.value
    }
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPathMatch {
    /// `Exact`, `PathPrefix` or `RegularExpression`.
    #[serde(rename = "type")]
    kind: PathMatchType,
    /// An absolute path starting with `/`, or a regular expression.
    value: String,
}

impl TryFrom<RawPathMatch> for PathMatch {
    type Error = String;
    fn try_from(raw: RawPathMatch) -> Result<Self, String> {
        let regex = match raw.kind {
            PathMatchType::RegularExpression => Some(compile_regex(&raw.value)?),
            _ => None,
        };
        Ok(Self {
            kind: raw.kind,
            value: raw.value,
            regex,
        })
    }
}

impl From<PathMatch> for RawPathMatch {
    fn from(m: PathMatch) -> Self {
        Self {
            kind: m.kind,
            value: m.value,
        }
    }
}

/// How a header or query parameter value is matched.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ValueMatchType {
    /// The value equals the given one.
    #[default]
    Exact,
    /// The whole value matches the given regular expression.
    RegularExpression,
}

/// A name/value condition on a header or query parameter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(try_from = "RawNameValue", into = "RawNameValue")]
pub struct NameValue {
    /// Header name (case-insensitive) or query parameter name (exact).
    pub name: String,
    /// The exact value, or a regular expression.
    pub value: String,
    /// `Exact` (the default) or `RegularExpression`.
    pub kind: ValueMatchType,
    /// The compiled expression of a `RegularExpression` match.
    pub regex: Option<regex::Regex>,
}

impl PartialEq for NameValue {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value && self.kind == other.kind
    }
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawNameValue {
    /// Header name (case-insensitive) or query parameter name (exact).
    name: String,
    /// The exact value, or a regular expression.
    value: String,
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(rename = "type", default, skip_serializing_if = "is_exact")]
    kind: ValueMatchType,
}

fn is_exact(kind: &ValueMatchType) -> bool {
    *kind == ValueMatchType::Exact
}

impl TryFrom<RawNameValue> for NameValue {
    type Error = String;
    fn try_from(raw: RawNameValue) -> Result<Self, String> {
        let regex = match raw.kind {
            ValueMatchType::RegularExpression => Some(compile_regex(&raw.value)?),
            ValueMatchType::Exact => None,
        };
        Ok(Self {
            name: raw.name,
            value: raw.value,
            kind: raw.kind,
            regex,
        })
    }
}

impl From<NameValue> for RawNameValue {
    fn from(m: NameValue) -> Self {
        Self {
            name: m.name,
            value: m.value,
            kind: m.kind,
        }
    }
}

/// Compiles `pattern` to match a whole value (as Envoy and most Gateway API
/// implementations do), within [`MAX_REGEX_LEN`] and [`MAX_REGEX_SIZE`].
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.chars().count() > MAX_REGEX_LEN {
        return Err(format!(
            "regular expression longer than {MAX_REGEX_LEN} characters"
        ));
    }
    // The pattern is parsed alone first: wrapped in the anchors, `a)|(b` would be
    // accepted and mean something else, and errors would quote the wrapper.
    if let Err(err) = regex_syntax::Parser::new().parse(pattern) {
        return Err(format!(
            "invalid regular expression {pattern:?}: {}",
            last_line(&err.to_string())
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_REGEX_SIZE)
        .dfa_size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|err| match err {
            regex::Error::CompiledTooBig(limit) => format!(
                "regular expression {pattern:?} is too large once compiled (over {limit} bytes)"
            ),
            err => format!(
                "invalid regular expression {pattern:?}: {}",
                last_line(&err.to_string())
            ),
        })
}

/// Syntax errors span several lines (the pattern, a caret, then `error: what`); keep `what`.
fn last_line(message: &str) -> &str {
    let line = message.trim_end().lines().last().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line)
}

/// A cluster a rule sends to, with its share.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WeightedBackend {
    /// Name of the cluster.
    pub cluster: String,
    /// Proportional weight; 0 sends nothing.
    #[serde(default = "one")]
    #[schemars(range(max = MAX_WEIGHT))]
    pub weight: u32,
    /// Filters for requests sent to this backend only, applied after the rule's
    /// header modifiers; its URL rewrite replaces the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<RouteFilters>,
}

/// Per-rule timeouts (Gateway API `timeouts`); each is optional.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleTimeouts {
    /// Time from receiving a request to the response headers, all attempts included; then 504.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<text::DurationText>")]
    pub request: Option<Duration>,
    /// Time one request to an upstream endpoint may take to its response headers; then 504.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<text::DurationText>")]
    pub backend_request: Option<Duration>,
}

/// Optional durations as human strings.
mod duration_opt {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => duration_str::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// A duration string, or null (as absent).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "duration_str")] Duration);
        Option::<Wrapped>::deserialize(deserializer).map(|found| found.map(|Wrapped(d)| d))
    }
}

fn one() -> u32 {
    1
}

/// Largest weight of a backend or an endpoint.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Checks the routes of listener `i` against the known cluster names.
pub fn validate_routes(
    i: usize,
    routes: &[VirtualHost],
    clusters: &HashSet<&str>,
) -> Result<(), ConfigError> {
    let mut hosts_seen = HashSet::new();
    for (v, vhost) in routes.iter().enumerate() {
        let at = |field: &str| format!("listeners[{i}].routes[{v}].{field}");
        if vhost.hosts.is_empty() {
            return Err(ConfigError::new(at("hosts"), "must list at least one host"));
        }
        for (h, host) in vhost.hosts.iter().enumerate() {
            let host = host.to_ascii_lowercase();
            if host.is_empty() || host.contains([':', '/', ' ']) {
                return Err(ConfigError::new(
                    at(&format!("hosts[{h}]")),
                    format!("{host:?} is not a host name (no port, no path)"),
                ));
            }
            if !hosts_seen.insert(host.clone()) {
                return Err(ConfigError::new(
                    at(&format!("hosts[{h}]")),
                    format!("host {host:?} is already routed by another virtual host"),
                ));
            }
        }
        for (r, rule) in vhost.rules.iter().enumerate() {
            let at = |field: &str| format!("listeners[{i}].routes[{v}].rules[{r}].{field}");
            if rule.backends.is_empty() {
                return Err(ConfigError::new(
                    at("backends"),
                    "must list at least one backend",
                ));
            }
            let prefix_only = rule.matches.iter().all(|m| {
                m.path
                    .as_ref()
                    .is_none_or(|p| p.kind == PathMatchType::PathPrefix)
            });
            if let Some(filters) = &rule.filters {
                validate_filters(filters, prefix_only, clusters, &|field| {
                    at(&format!("filters.{field}"))
                })?;
            }
            for (b, backend) in rule.backends.iter().enumerate() {
                if let Some(filters) = &backend.filters {
                    validate_filters(filters, prefix_only, clusters, &|field| {
                        at(&format!("backends[{b}].filters.{field}"))
                    })?;
                }
                if !clusters.contains(backend.cluster.as_str()) {
                    return Err(ConfigError::new(
                        at(&format!("backends[{b}].cluster")),
                        format!("no cluster named {:?}", backend.cluster),
                    ));
                }
                if backend.weight > MAX_WEIGHT {
                    return Err(ConfigError::new(
                        at(&format!("backends[{b}].weight")),
                        format!("must be at most {MAX_WEIGHT}"),
                    ));
                }
            }
            if let Some(timeouts) = &rule.timeouts {
                if let Some(request) = timeouts.request {
                    check_positive(request, &at("timeouts.request"))?;
                }
                if let Some(backend) = timeouts.backend_request {
                    check_positive(backend, &at("timeouts.backend_request"))?;
                    if timeouts.request.is_some_and(|request| backend > request) {
                        return Err(ConfigError::new(
                            at("timeouts.backend_request"),
                            "must not be longer than timeouts.request",
                        ));
                    }
                }
            }
            if let Some(retry) = &rule.retry {
                resilience::validate_retry(retry, &|field| at(&format!("retry.{field}")))?;
            }
            for (m, matched) in rule.matches.iter().enumerate() {
                validate_match(matched, &|field| at(&format!("matches[{m}].{field}")))?;
            }
        }
    }
    Ok(())
}

fn validate_match(matched: &RouteMatch, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if let Some(path) = &matched.path {
        if path.kind != PathMatchType::RegularExpression && !path.value.starts_with('/') {
            return Err(ConfigError::new(at("path.value"), "must start with '/'"));
        }
    }
    for (h, header) in matched.headers.iter().enumerate() {
        if http::HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            return Err(ConfigError::new(
                at(&format!("headers[{h}].name")),
                format!("{:?} is not a valid header name", header.name),
            ));
        }
        if header.kind == ValueMatchType::Exact
            && http::HeaderValue::from_str(&header.value).is_err()
        {
            return Err(ConfigError::new(
                at(&format!("headers[{h}].value")),
                "is not a valid header value",
            ));
        }
    }
    if let Some(method) = &matched.method {
        if http::Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
            return Err(ConfigError::new(
                at("method"),
                format!("{method:?} is not a valid method"),
            ));
        }
    }
    Ok(())
}

/// Checks a rule's (or backend's) filters; `prefix_only` says whether every match of the
/// rule is a PathPrefix, which ReplacePrefixMatch needs to know what to replace.
fn validate_filters(
    filters: &RouteFilters,
    prefix_only: bool,
    clusters: &HashSet<&str>,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    if let Some(mirror) = &filters.request_mirror {
        resilience::validate_mirror(mirror, clusters, &|field| {
            at(&format!("request_mirror.{field}"))
        })?;
    }
    for (field, modifier) in [
        ("request_headers", &filters.request_headers),
        ("response_headers", &filters.response_headers),
    ] {
        if let Some(modifier) = modifier {
            validate_modifier(modifier, &|sub| at(&format!("{field}.{sub}")))?;
        }
    }
    let Some(rewrite) = &filters.url_rewrite else {
        return Ok(());
    };
    if let Some(host) = &rewrite.hostname {
        if host.is_empty()
            || host.contains(['/', ' ', '@'])
            || http::HeaderValue::from_str(host).is_err()
        {
            return Err(ConfigError::new(
                at("url_rewrite.hostname"),
                format!("{host:?} is not a host name"),
            ));
        }
    }
    if let Some(path) = &rewrite.path {
        let value = &path.value;
        let empty_ok = path.kind == PathRewriteType::ReplacePrefixMatch && value.is_empty();
        if !empty_ok
            && (!value.starts_with('/')
                || http::uri::PathAndQuery::try_from(value.as_str()).is_err())
            || value.contains(['?', '#'])
        {
            return Err(ConfigError::new(
                at("url_rewrite.path.value"),
                format!("{value:?} is not an absolute path"),
            ));
        }
        if path.kind == PathRewriteType::ReplacePrefixMatch && !prefix_only {
            return Err(ConfigError::new(
                at("url_rewrite.path.type"),
                "ReplacePrefixMatch needs every match of the rule to be a PathPrefix",
            ));
        }
    }
    Ok(())
}

fn validate_modifier(
    modifier: &HeaderModifier,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    let pairs = modifier
        .set
        .iter()
        .map(|p| ("set", p))
        .chain(modifier.add.iter().map(|p| ("add", p)));
    let mut index = [0usize; 2];
    for (action, pair) in pairs {
        let slot = usize::from(action == "add");
        let i = index[slot];
        index[slot] += 1;
        let name = http::HeaderName::from_bytes(pair.name.as_bytes()).map_err(|_| {
            ConfigError::new(
                at(&format!("{action}[{i}].name")),
                format!("{:?} is not a valid header name", pair.name),
            )
        })?;
        if http::HeaderValue::from_str(&pair.value).is_err() {
            return Err(ConfigError::new(
                at(&format!("{action}[{i}].value")),
                "is not a valid header value",
            ));
        }
        if !seen.insert(name) {
            return Err(ConfigError::new(
                at(&format!("{action}[{i}].name")),
                format!("header {:?} already has an action", pair.name),
            ));
        }
    }
    for (i, name) in modifier.remove.iter().enumerate() {
        let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::new(
                at(&format!("remove[{i}]")),
                format!("{name:?} is not a valid header name"),
            )
        })?;
        if !seen.insert(parsed) {
            return Err(ConfigError::new(
                at(&format!("remove[{i}]")),
                format!("header {name:?} already has an action"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
