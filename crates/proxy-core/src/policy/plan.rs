//! A request's plan, decided before anything is sent: authorization, then the cluster,
//! timeouts, retries, mirrors and filters it gets.
//!
//! [`plan`] is a pure function of what the request says ([`Ask`]) and the listener's
//! compiled policy ([`ListenerPolicy`]), with the random draw and the audit counter
//! passed in, so it is table-tested without sockets. The cluster type is generic for
//! the same reason; the server executes the plan.

use std::borrow::Cow;
use std::time::Duration;

use crate::config;
use crate::error::{ErrorKind, ProxyError};
use crate::policy::authz::{normalize_path, Authorizer, AuthzRequest, Decision, HttpView};
use crate::policy::filters::Filters;
use crate::policy::retry::RetryPolicy;
use crate::policy::route::{Found, MatchedAt, Mirror, Miss, RequestView, RouteTable};

/// Where a listener's traffic goes.
#[derive(Debug)]
pub enum Target<C> {
    /// Everything to one cluster.
    Cluster(C),
    /// HTTP requests by host and rules.
    Routes(RouteTable<C>),
}

/// What a listener decides its requests by, compiled from its config.
#[derive(Debug)]
pub struct ListenerPolicy<C> {
    /// Where traffic goes.
    pub target: Target<C>,
    /// The bound on a whole request, unless its rule sets one.
    pub request_timeout: Duration,
    /// Who may call, if the listener has `authorization`.
    pub authz: Option<Authorizer>,
}

impl<C> ListenerPolicy<C> {
    /// Compiles a listener's policy; `cluster` resolves a cluster name (validated to exist).
    pub fn compile(cfg: &config::Listener, mut cluster: impl FnMut(&str) -> Option<C>) -> Self {
        let target = match cfg.cluster.as_deref().and_then(&mut cluster) {
            Some(one) => Target::Cluster(one),
            None => Target::Routes(RouteTable::compile(&cfg.routes, cluster)),
        };
        Self {
            target,
            request_timeout: cfg.timeouts.request,
            authz: cfg.authorization.as_ref().map(Authorizer::compile),
        }
    }

    /// The path a request is planned and forwarded with: on a listener that authorizes,
    /// normalised, so that the policies and the app see the same path; elsewhere, as it
    /// came. A malformed one is refused (400 `invalid-path`).
    pub fn request_path<'p>(&self, path: &'p str) -> Result<Cow<'p, str>, ProxyError> {
        if self.authz.is_none() {
            return Ok(Cow::Borrowed(path));
        }
        normalize_path(path).map_err(|err| ProxyError::with_source(ErrorKind::InvalidPath, err))
    }
}

/// What planning looks at: the request, on its normalised path, and who sends it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The request as routing sees it.
    pub request: RequestView<'a>,
    /// The client's verified SPIFFE ID, on an mTLS connection.
    pub identity: Option<&'a str>,
}

/// Where a request goes and how.
#[derive(Debug)]
pub struct Plan<'r, C> {
    /// The cluster it is sent to.
    pub cluster: &'r C,
    /// Bound on the whole request, every try included.
    pub timeout: Duration,
    /// Bound on one try, if the rule sets one.
    pub backend_timeout: Option<Duration>,
    /// The rule's and backend's filters.
    pub filters: Option<&'r Filters>,
    /// The rule and the match that won, on a listener with routes.
    pub route: Option<Found<'r, C>>,
    /// The rule's retries, when it allows at least one.
    pub retry: Option<&'r RetryPolicy>,
    /// Where copies go, each by its own chance.
    pub mirrors: &'r [Mirror<C>],
    /// The authorization decision, on a listener with `authorization`.
    pub authz: Option<Decision>,
}

impl<'r, C> Plan<'r, C> {
    /// The PathPrefix that matched, for ReplacePrefixMatch (empty without one).
    pub fn matched_prefix(&self) -> &'r str {
        self.route.as_ref().map_or("", |found| found.matched_prefix)
    }
}

/// Why a request gets no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Authorization refused it (403).
    Unauthorized(Decision),
    /// No virtual host serves its host, or no rule matches it (404).
    NoRoute(Miss),
    /// Its rule, where it is in the config, has backends that all have weight 0 (500).
    NoBackend(MatchedAt),
}

impl Refusal {
    /// The failure the client gets, saying what did not match for a route miss.
    pub fn error(&self, req: &RequestView<'_>) -> ProxyError {
        match self {
            Self::Unauthorized(_) => ProxyError::new(ErrorKind::Unauthorized),
            Self::NoBackend(_) => ProxyError::new(ErrorKind::NoBackend),
            Self::NoRoute(miss) => {
                let why = match miss {
                    Miss::NoHost => format!("no virtual host serves {:?}", req.host),
                    Miss::NoRule => format!(
                        "no rule of {:?} matches {} {}",
                        req.host, req.method, req.path
                    ),
                };
                ProxyError::with_source(ErrorKind::NoRoute, why)
            }
        }
    }
}

/// Plans `ask` on a listener with `policy`: authorization first (`audited` is told
/// each audit policy that matched), then routing (`random(n)` draws a weighted
/// backend, below `n`).
pub fn plan<'r, C>(
    ask: &Ask<'_>,
    policy: &'r ListenerPolicy<C>,
    random: impl FnOnce(usize) -> usize,
    audited: impl FnMut(usize),
) -> Result<Plan<'r, C>, Refusal> {
    let authz = policy.authz.as_ref().map(|authorizer| {
        let req = AuthzRequest {
            identity: ask.identity,
            http: Some(HttpView {
                method: ask.request.method,
                path: ask.request.path,
            }),
        };
        authorizer.evaluate(&req, audited)
    });
    if let Some(decision) = authz.filter(|decision| !decision.allowed) {
        return Err(Refusal::Unauthorized(decision));
    }
    let table = match &policy.target {
        Target::Cluster(cluster) => {
            return Ok(Plan {
                cluster,
                timeout: policy.request_timeout,
                backend_timeout: None,
                filters: None,
                route: None,
                retry: None,
                mirrors: &[],
                authz,
            })
        }
        Target::Routes(table) => table,
    };
    let found = table.find_match(&ask.request).map_err(Refusal::NoRoute)?;
    let rule = found.rule;
    let backend = rule
        .pick_backend(random)
        .ok_or(Refusal::NoBackend(found.at))?;
    Ok(Plan {
        cluster: &backend.target,
        timeout: rule.timeout.unwrap_or(policy.request_timeout),
        backend_timeout: rule.backend_timeout,
        filters: backend.filters.as_ref(),
        route: Some(found),
        retry: rule.retry.as_ref().filter(|retry| retry.attempts > 0),
        mirrors: &backend.mirrors,
        authz,
    })
}

#[cfg(test)]
mod tests;
