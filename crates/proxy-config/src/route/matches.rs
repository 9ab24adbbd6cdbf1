//! Config of what a rule matches: path, headers, query parameters and method.
//!
//! Regular expressions are compiled here, while the snapshot is parsed, so that a bad
//! one is refused with its JSON path and a request never compiles anything.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Largest compiled size of one regular expression, in bytes: a pattern that needs more
/// (such as `(a{100}){100}`) is refused, so one route cannot make matching slow or big.
pub const MAX_REGEX_SIZE: usize = 256 * 1024;
/// Longest source of one regular expression, in characters (as the Gateway API allows).
pub const MAX_REGEX_LEN: usize = 1024;

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

pub(super) fn validate_match(
    matched: &RouteMatch,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
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
