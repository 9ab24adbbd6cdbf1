//! Config of authorization on a listener: a default and policies of rules by caller identity, path and method.
//!
//! The shape is what the control plane compiles AuthorizationPolicy resources
//! into (`python/meshpy/authz.py`); `crate::authz` evaluates it. In a rule an
//! absent list and an empty one differ: `sources` absent matches any caller,
//! `sources: []` none; `to` absent matches any request, `to: []` none.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::spiffe::SpiffeId;

/// Policies per listener at most.
pub const MAX_POLICIES: usize = 1024;
/// Rules per policy at most.
pub const MAX_RULES: usize = 64;
/// Sources per rule at most.
pub const MAX_SOURCES: usize = 64;
/// `to` entries per rule at most.
pub const MAX_TARGETS: usize = 16;
/// Paths per `to` entry at most.
pub const MAX_PATHS: usize = 64;
/// Methods per `to` entry at most.
pub const MAX_METHODS: usize = 16;
/// Longest path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest identity or identity prefix, in bytes (the SPIFFE limit).
pub const MAX_IDENTITY_LEN: usize = 2048;
/// Longest policy name, in bytes (`<namespace>/<name>`: 63 + 1 + 253, rounded up).
pub const MAX_POLICY_NAME_LEN: usize = 320;

/// A listener's `authorization`: who may send which requests.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// What decides when no policy does and there is no allow policy.
    #[serde(default)]
    pub default: AuthzDefault,
    /// The policies, each a name, an action and rules.
    #[serde(default)]
    #[schemars(length(max = MAX_POLICIES))]
    pub policies: Vec<AuthzPolicy>,
}

/// The decision when neither a deny policy nor allow policies decide.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuthzDefault {
    /// Everyone, with or without a verified identity.
    #[default]
    AllUnauthenticated,
    /// Only callers with a verified mTLS identity.
    AllAuthenticated,
    /// Nobody.
    Deny,
}

/// What a policy does with the requests its rules match.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuthzAction {
    /// Once any allow policy exists, only requests one of them matches are allowed.
    Allow,
    /// A match refuses the request, whatever allow policies say.
    Deny,
    /// A match is only counted.
    Audit,
}

/// A named policy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthzPolicy {
    /// Unique in the listener, e.g. `default/payment-callers`; a metric label.
    #[schemars(regex(pattern = "^[a-z0-9][a-z0-9_./-]*$"), length(max = MAX_POLICY_NAME_LEN))]
    pub name: String,
    /// `allow`, `deny` or `audit`.
    pub action: AuthzAction,
    /// Alternatives (OR); none means the policy matches nothing.
    #[serde(default)]
    #[schemars(length(max = MAX_RULES))]
    pub rules: Vec<AuthzRule>,
}

/// A rule: a source matches and a `to` entry matches.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthzRule {
    /// Callers (OR); absent means any caller, unauthenticated ones too; empty means nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SOURCES))]
    pub sources: Option<Vec<AuthzSource>>,
    /// Requests (OR); absent means any request; empty means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TARGETS))]
    pub to: Option<Vec<AuthzTarget>>,
}

/// A caller: an exact SPIFFE ID, or every ID starting with a prefix.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthzSource {
    /// `{"identity": "spiffe://td/ns/x/sa/y"}`: exactly this verified ID.
    #[schemars(title = "IdentitySource")]
    Identity(SpiffeId),
    /// `{"identity_prefix": "spiffe://td/ns/x/sa/"}`: any verified ID starting with this.
    #[schemars(title = "IdentityPrefixSource")]
    IdentityPrefix(
        #[schemars(regex(pattern = crate::text::SPIFFE_PREFIX_PATTERN), length(max = MAX_IDENTITY_LEN))]
         String,
    ),
}

/// Requests: any of `paths` and any of `methods` (each empty or absent: any).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthzTarget {
    /// Path conditions on the normalised path (OR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PATHS))]
    pub paths: Vec<AuthzPath>,
    /// Methods, exactly as sent (OR), e.g. `POST`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_METHODS), inner(regex(pattern = crate::text::TOKEN_PATTERN)))]
    pub methods: Vec<String>,
}

/// A path condition.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthzPath {
    /// `{"exact": "/charge"}`: the whole path.
    #[schemars(title = "ExactPath")]
    Exact(
        #[schemars(regex(pattern = crate::text::AUTHZ_PATH_PATTERN), length(max = MAX_PATH_LEN))]
        String,
    ),
    /// `{"prefix": "/refunds/"}`: the path starts with this, byte for byte.
    #[schemars(title = "PrefixPath")]
    Prefix(
        #[schemars(regex(pattern = crate::text::AUTHZ_PATH_PATTERN), length(max = MAX_PATH_LEN))]
        String,
    ),
}

impl AuthzPath {
    /// The path or prefix.
    pub fn value(&self) -> &str {
        match self {
            Self::Exact(value) | Self::Prefix(value) => value,
        }
    }
}

/// Checks the `authorization` of listener `i`.
pub fn validate_authorization(i: usize, authz: &Authorization) -> Result<(), ConfigError> {
    let at = |field: &str| format!("listeners[{i}].authorization.{field}");
    check_count(authz.policies.len(), MAX_POLICIES, &at("policies"))?;
    let mut names = std::collections::HashSet::new();
    for (p, policy) in authz.policies.iter().enumerate() {
        let at = |field: &str| at(&format!("policies[{p}].{field}"));
        check_policy_name(&policy.name).map_err(|msg| ConfigError::new(at("name"), msg))?;
        if !names.insert(policy.name.as_str()) {
            return Err(ConfigError::new(
                at("name"),
                format!("duplicate policy name {:?}", policy.name),
            ));
        }
        check_count(policy.rules.len(), MAX_RULES, &at("rules"))?;
        for (r, rule) in policy.rules.iter().enumerate() {
            let at = |field: &str| at(&format!("rules[{r}].{field}"));
            if let Some(sources) = &rule.sources {
                check_count(sources.len(), MAX_SOURCES, &at("sources"))?;
                for (s, source) in sources.iter().enumerate() {
                    if let AuthzSource::IdentityPrefix(prefix) = source {
                        check_identity_prefix(prefix).map_err(|msg| {
                            ConfigError::new(at(&format!("sources[{s}].identity_prefix")), msg)
                        })?;
                    }
                }
            }
            if let Some(to) = &rule.to {
                check_count(to.len(), MAX_TARGETS, &at("to"))?;
                for (t, target) in to.iter().enumerate() {
                    let at = |field: &str| at(&format!("to[{t}].{field}"));
                    validate_target(target, &at)?;
                }
            }
        }
    }
    Ok(())
}

fn validate_target(target: &AuthzTarget, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    check_count(target.paths.len(), MAX_PATHS, &at("paths"))?;
    for (p, path) in target.paths.iter().enumerate() {
        let kind = match path {
            AuthzPath::Exact(_) => "exact",
            AuthzPath::Prefix(_) => "prefix",
        };
        check_path(path.value())
            .map_err(|msg| ConfigError::new(at(&format!("paths[{p}].{kind}")), msg))?;
    }
    check_count(target.methods.len(), MAX_METHODS, &at("methods"))?;
    for (m, method) in target.methods.iter().enumerate() {
        if method.is_empty() || http::Method::from_bytes(method.as_bytes()).is_err() {
            return Err(ConfigError::new(
                at(&format!("methods[{m}]")),
                format!("{method:?} is not a valid method"),
            ));
        }
    }
    Ok(())
}

fn check_count(len: usize, max: usize, path: &str) -> Result<(), ConfigError> {
    if len > max {
        Err(ConfigError::new(path, format!("at most {max} entries")))
    } else {
        Ok(())
    }
}

/// Policy names are metric labels: kept plain, and "default" names the listener's default.
fn check_policy_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | '/')
    });
    if !(first_ok && rest_ok && name.len() <= MAX_POLICY_NAME_LEN) {
        return Err(format!(
            "{name:?} is not a valid policy name: use lowercase letters, digits, '-', '_', '.' and '/', starting with a letter or digit, at most {MAX_POLICY_NAME_LEN} bytes"
        ));
    }
    if name == "default" {
        return Err("\"default\" is reserved for the listener's default decision".to_string());
    }
    Ok(())
}

/// A prefix of SPIFFE IDs: the scheme, a whole trust domain and its '/', then path characters.
fn check_identity_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_IDENTITY_LEN {
        return Err(format!("is longer than {MAX_IDENTITY_LEN} bytes"));
    }
    let Some(rest) = prefix.strip_prefix("spiffe://") else {
        return Err(format!(
            "{prefix:?} is not a SPIFFE ID prefix: it must start with \"spiffe://\""
        ));
    };
    // Without the '/', "spiffe://td" would also match "spiffe://td-evil/...".
    let Some((domain, path)) = rest.split_once('/') else {
        return Err(format!(
            "{prefix:?} must include the '/' after the trust domain, e.g. spiffe://{rest}/ns/default/sa/"
        ));
    };
    let domain_ok = !domain.is_empty()
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if !domain_ok {
        return Err(format!(
            "{prefix:?}: the trust domain may hold only lowercase letters, digits, '.', '-' and '_'"
        ));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
    {
        return Err(format!(
            "{prefix:?}: the path may hold only letters, digits, '.', '-', '_' and '/'"
        ));
    }
    Ok(())
}

/// A path condition: absolute, of URI path characters, percent-encodings well formed.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("is longer than {MAX_PATH_LEN} bytes"));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "{path:?} must not have a query or a fragment: conditions are on the path only"
        ));
    }
    if let Some(bad) = path.bytes().find(|b| {
        !b.is_ascii_graphic()
            || matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
    }) {
        return Err(format!(
            "{path:?} holds {:?}, which a URI path cannot; percent-encode it",
            char::from(bad)
        ));
    }
    crate::path::normalize_path(path)
        .map(|_| ())
        .map_err(|_| format!("{path:?} has a malformed percent-encoding ('%' and two hex digits)"))
}

#[cfg(test)]
mod tests;
