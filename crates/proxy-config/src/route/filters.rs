//! Config of what a rule (or one of its backends) changes: headers, the URL, and
//! requests mirrored elsewhere (the Gateway API filters).

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resilience::{self, RequestMirror};
use crate::ConfigError;

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

/// Checks a rule's (or backend's) filters; `prefix_only` says whether every match of the
/// rule is a PathPrefix, which ReplacePrefixMatch needs to know what to replace.
pub(super) fn validate_filters(
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
