//! Authorization as a pure function: a listener's policies, compiled once per snapshot, decide on a caller identity, a method and a normalised path.
//!
//! Evaluation order, for a request on an HTTP listener or a connection on a
//! TCP one:
//!
//! 1. every `audit` policy with a matching rule is reported (counted only);
//! 2. a matching rule of a `deny` policy refuses;
//! 3. when `allow` policies exist, only a matching rule of one of them allows;
//! 4. otherwise the default decides: `all_unauthenticated` allows everyone,
//!    `all_authenticated` callers with a verified mTLS identity, `deny` nobody.
//!
//! A TCP connection has no method and no path. A `to` entry with a path or
//! method condition never matches one in `allow` and `audit` policies (they
//! grant or record only what surely matches), but always matches in `deny`
//! policies: a deny rule written for some requests refuses the whole
//! connection rather than let those requests through (fail closed).
//!
//! Paths are matched after [`normalize_path`], which is also the path the
//! request is forwarded with, so `/admin/../charge`, `//charge` and
//! `/%63harge` are all `/charge` to both the policy and the app.

use std::borrow::Cow;

use http::Method;

use crate::config::path::normalize_percent;
pub use crate::config::path::{normalize_path, MalformedPath};
use crate::config::{
    Authorization, AuthzAction, AuthzDefault, AuthzPath, AuthzPolicy, AuthzSource, AuthzTarget,
};

/// What authorization looks at.
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// The caller's verified SPIFFE ID; `None` for a plaintext connection.
    pub identity: Option<&'a str>,
    /// The request's method and normalised path; `None` for a TCP connection.
    pub http: Option<HttpView<'a>>,
}

/// The HTTP part of a request.
#[derive(Debug, Clone, Copy)]
pub struct HttpView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The normalised path, without query.
    pub path: &'a str,
}

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decider {
    /// The policy at this index of the config's `policies`.
    Policy(usize),
    /// Allow policies exist and none matched.
    NoAllowMatch,
    /// No policy applied: the listener's default.
    Default,
}

/// An authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request (or connection) may go on.
    pub allowed: bool,
    /// Which policy decided, or the default.
    pub by: Decider,
    /// The index, in its policy's `rules`, of the rule that matched, when a policy decided.
    pub rule: Option<usize>,
}

/// A listener's policies, compiled: grouped by action, paths normalised.
#[derive(Debug)]
pub struct Authorizer {
    default: AuthzDefault,
    names: Vec<Box<str>>,
    audit: Vec<Policy>,
    deny: Vec<Policy>,
    allow: Vec<Policy>,
}

#[derive(Debug)]
struct Policy {
    index: usize,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    /// `None`: any caller.
    sources: Option<Sources>,
    /// `None`: any request.
    to: Option<Vec<Target>>,
}

#[derive(Debug, Default)]
struct Sources {
    exact: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
}

#[derive(Debug)]
struct Target {
    /// Empty: any path.
    paths: Vec<PathCondition>,
    /// Empty: any method.
    methods: Vec<Method>,
}

#[derive(Debug)]
enum PathCondition {
    Exact(Box<str>),
    Prefix(Box<str>),
}

impl Authorizer {
    /// Compiles a validated `authorization`.
    pub fn compile(config: &Authorization) -> Self {
        let mut authorizer = Self {
            default: config.default,
            names: Vec::with_capacity(config.policies.len()),
            audit: Vec::new(),
            deny: Vec::new(),
            allow: Vec::new(),
        };
        for (index, policy) in config.policies.iter().enumerate() {
            authorizer.names.push(policy.name.as_str().into());
            let compiled = Policy::compile(index, policy);
            match policy.action {
                AuthzAction::Audit => authorizer.audit.push(compiled),
                AuthzAction::Deny => authorizer.deny.push(compiled),
                AuthzAction::Allow => authorizer.allow.push(compiled),
            }
        }
        authorizer
    }

    /// Decides on `req`; `audited(i)` is called for each audit policy that matches.
    pub fn evaluate(&self, req: &AuthzRequest<'_>, mut audited: impl FnMut(usize)) -> Decision {
        for policy in &self.audit {
            if policy.matching_rule(req, AuthzAction::Audit).is_some() {
                audited(policy.index);
            }
        }
        let first_match = |policies: &[Policy], action| {
            policies.iter().find_map(|policy| {
                let rule = policy.matching_rule(req, action)?;
                Some(Decision {
                    allowed: action == AuthzAction::Allow,
                    by: Decider::Policy(policy.index),
                    rule: Some(rule),
                })
            })
        };
        if let Some(denied) = first_match(&self.deny, AuthzAction::Deny) {
            return denied;
        }
        if !self.allow.is_empty() {
            return first_match(&self.allow, AuthzAction::Allow).unwrap_or(Decision {
                allowed: false,
                by: Decider::NoAllowMatch,
                rule: None,
            });
        }
        let allowed = match self.default {
            AuthzDefault::AllUnauthenticated => true,
            AuthzDefault::AllAuthenticated => req.identity.is_some(),
            AuthzDefault::Deny => false,
        };
        Decision {
            allowed,
            by: Decider::Default,
            rule: None,
        }
    }

    /// The name of the policy at `index` of the config.
    pub fn policy_name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(|name| &**name)
    }

    /// The metric label of a decider: the policy's name, or `default`.
    pub fn label(&self, by: Decider) -> &str {
        match by {
            Decider::Policy(index) => self.policy_name(index).unwrap_or("default"),
            Decider::NoAllowMatch | Decider::Default => "default",
        }
    }
}

impl Policy {
    fn compile(index: usize, policy: &AuthzPolicy) -> Self {
        let rules = policy
            .rules
            .iter()
            .map(|rule| Rule {
                sources: rule.sources.as_deref().map(Sources::compile),
                to: rule
                    .to
                    .as_deref()
                    .map(|to| to.iter().map(Target::compile).collect()),
            })
            .collect();
        Self { index, rules }
    }

    /// The index of the first rule that matches `req`, if any does.
    fn matching_rule(&self, req: &AuthzRequest<'_>, action: AuthzAction) -> Option<usize> {
        self.rules.iter().position(|rule| {
            let source_ok = match &rule.sources {
                None => true,
                Some(sources) => req.identity.is_some_and(|id| sources.matches(id)),
            };
            source_ok
                && match &rule.to {
                    None => true,
                    Some(to) => to.iter().any(|target| target.matches(req, action)),
                }
        })
    }
}

impl Sources {
    fn compile(sources: &[AuthzSource]) -> Self {
        let mut compiled = Self::default();
        for source in sources {
            match source {
                AuthzSource::Identity(id) => compiled.exact.push(id.as_str().into()),
                AuthzSource::IdentityPrefix(prefix) => {
                    compiled.prefixes.push(prefix.as_str().into())
                }
            }
        }
        compiled
    }

    fn matches(&self, identity: &str) -> bool {
        self.exact.iter().any(|id| **id == *identity)
            || self.prefixes.iter().any(|p| identity.starts_with(&**p))
    }
}

impl Target {
    fn compile(target: &AuthzTarget) -> Self {
        Self {
            paths: target.paths.iter().map(PathCondition::compile).collect(),
            methods: target
                .methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
        }
    }

    fn matches(&self, req: &AuthzRequest<'_>, action: AuthzAction) -> bool {
        let Some(http) = &req.http else {
            // A connection: conditions on requests cannot be checked (see the module doc).
            return (self.paths.is_empty() && self.methods.is_empty())
                || action == AuthzAction::Deny;
        };
        (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(http.path)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == http.method))
    }
}

impl PathCondition {
    /// Normalised the way request paths are, so a condition means what it says.
    fn compile(path: &AuthzPath) -> Self {
        match path {
            AuthzPath::Exact(value) => {
                let value = normalize_path(value).unwrap_or(Cow::Borrowed(value));
                Self::Exact(value.as_ref().into())
            }
            AuthzPath::Prefix(value) => Self::Prefix(normalize_prefix(value).into()),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => **exact == *path,
            Self::Prefix(prefix) => path.starts_with(&**prefix),
        }
    }
}

/// A prefix's whole segments are normalised like a path; its last, partial one
/// only in its percent-encodings: `/files/.` must keep matching `/files/.git`.
fn normalize_prefix(prefix: &str) -> String {
    let (head, tail) = match prefix.rfind('/') {
        Some(slash) => prefix.split_at(slash + 1),
        None => ("", prefix),
    };
    let head = normalize_path(head).unwrap_or(Cow::Borrowed(head));
    let tail = normalize_percent(tail).unwrap_or(Cow::Borrowed(tail));
    format!("{head}{tail}")
}

#[cfg(test)]
mod tests;
