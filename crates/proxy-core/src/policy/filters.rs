//! Gateway API filters as pure functions: header modifiers and URL rewrites, compiled once per snapshot.
//!
//! Header names and values are parsed when a snapshot is applied, so a request only
//! clones refcounted values into its header map. Nothing here touches a socket.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{self, PathRewriteType};

/// One header modifier (RequestHeaderModifier or ResponseHeaderModifier), compiled.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

fn pairs(pairs: &[config::HeaderPair]) -> Vec<(HeaderName, HeaderValue)> {
    // Validation refused invalid names and values; nothing is dropped here in practice.
    pairs
        .iter()
        .filter_map(|p| {
            let name = HeaderName::from_bytes(p.name.as_bytes()).ok()?;
            let value = HeaderValue::from_str(&p.value).ok()?;
            Some((name, value))
        })
        .collect()
}

impl HeaderEdits {
    /// Compiles a validated modifier.
    pub fn compile(cfg: &config::HeaderModifier) -> Self {
        Self {
            set: pairs(&cfg.set),
            add: pairs(&cfg.add),
            remove: cfg
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        }
    }

    /// Applies the edits: `set` replaces every value, `add` appends one more,
    /// `remove` drops the header. Names are case-insensitive (`HeaderName` is lowercase).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// A path rewrite, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEdit {
    /// ReplaceFullPath: the path becomes this.
    Full(String),
    /// ReplacePrefixMatch: the matched prefix becomes this, stored without a trailing `/`.
    Prefix(String),
}

impl PathEdit {
    fn compile(cfg: &config::PathRewrite) -> Self {
        match cfg.kind {
            PathRewriteType::ReplaceFullPath => Self::Full(cfg.value.clone()),
            PathRewriteType::ReplacePrefixMatch => {
                Self::Prefix(cfg.value.trim_end_matches('/').to_string())
            }
        }
    }

    /// The path the upstream sees. `matched_prefix` is the PathPrefix that matched,
    /// without a trailing `/` (empty for `/`), as routing stores it.
    ///
    /// ReplacePrefixMatch replaces whole path elements and keeps what follows,
    /// so trailing slashes of the prefix or the replacement change nothing:
    /// `/foo/bar` with prefix `/foo` (or `/foo/`) and replacement `/xyz` (or `/xyz/`)
    /// becomes `/xyz/bar`, `/foo/` becomes `/xyz/`, and an empty or `/` replacement
    /// strips the prefix, leaving at least `/` (Gateway API `HTTPPathModifier`).
    pub fn apply(&self, path: &str, matched_prefix: &str) -> String {
        match self {
            Self::Full(full) => full.clone(),
            Self::Prefix(replacement) => {
                let rest = path
                    .strip_prefix(matched_prefix)
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                    .unwrap_or(path);
                let mut out = String::with_capacity(replacement.len() + rest.len());
                out.push_str(replacement);
                out.push_str(rest);
                if out.is_empty() {
                    out.push('/');
                }
                out
            }
        }
    }
}

/// Everything a request to one backend goes through: the rule's filters, then the backend's.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Request header modifiers, in order (the rule's, then the backend's).
    pub request: Vec<HeaderEdits>,
    /// Response header modifiers, in order (the rule's, then the backend's).
    pub response: Vec<HeaderEdits>,
    /// The new `Host`/`:authority`; the backend's replaces the rule's.
    pub hostname: Option<HeaderValue>,
    /// The path rewrite; the backend's replaces the rule's.
    pub path: Option<PathEdit>,
}

impl Filters {
    /// The filters of a backend of a rule; `None` when neither has any (the common case).
    pub fn compile(
        rule: Option<&config::RouteFilters>,
        backend: Option<&config::RouteFilters>,
    ) -> Option<Self> {
        if rule.is_none() && backend.is_none() {
            return None;
        }
        let mut out = Self::default();
        for cfg in [rule, backend].into_iter().flatten() {
            out.request
                .extend(cfg.request_headers.as_ref().map(HeaderEdits::compile));
            out.response
                .extend(cfg.response_headers.as_ref().map(HeaderEdits::compile));
            if let Some(rewrite) = &cfg.url_rewrite {
                if let Some(host) = &rewrite.hostname {
                    out.hostname = HeaderValue::from_str(host).ok();
                }
                if let Some(path) = &rewrite.path {
                    out.path = Some(PathEdit::compile(path));
                }
            }
        }
        Some(out)
    }

    /// Applies the request header modifiers.
    pub fn edit_request_headers(&self, headers: &mut HeaderMap) {
        for edits in &self.request {
            edits.apply(headers);
        }
    }

    /// Applies the response header modifiers.
    pub fn edit_response_headers(&self, headers: &mut HeaderMap) {
        for edits in &self.response {
            edits.apply(headers);
        }
    }
}

#[cfg(test)]
mod tests;
