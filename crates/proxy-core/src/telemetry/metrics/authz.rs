//! Authorization counters of one listener: decisions by the policy that made them, and audit matches.

use prometheus_client::metrics::counter::Counter;

use super::{AuditLabels, AuthzLabels, Metrics};
use crate::config::{Authorization, AuthzAction};
use crate::policy::authz::{Decider, Decision};

impl Metrics {
    /// Authorization counters of one listener for its policies, resolved when
    /// a snapshot is applied so that requests touch only atomics.
    pub fn authz(&self, listener: &str, config: &Authorization) -> AuthzCounters {
        let decided = |decision, policy: &str| {
            self.authz_requests
                .get_or_create(&AuthzLabels {
                    listener: listener.to_string(),
                    decision,
                    policy: policy.to_string(),
                })
                .clone()
        };
        let policies = config
            .policies
            .iter()
            .map(|policy| match policy.action {
                AuthzAction::Allow => decided("allow", &policy.name),
                AuthzAction::Deny => decided("deny", &policy.name),
                AuthzAction::Audit => self
                    .authz_audit
                    .get_or_create(&AuditLabels {
                        listener: listener.to_string(),
                        policy: policy.name.clone(),
                    })
                    .clone(),
            })
            .collect();
        AuthzCounters {
            policies,
            default_allow: decided("allow", "default"),
            default_deny: decided("deny", "default"),
        }
    }
}

/// The authorization counters of one listener, by the index of a policy in its config.
#[derive(Debug, Clone, Default)]
pub struct AuthzCounters {
    /// Per policy: its decisions (allow or deny policies) or its matches (audit policies).
    policies: Vec<Counter>,
    default_allow: Counter,
    default_deny: Counter,
}

impl AuthzCounters {
    /// Counts a decision.
    pub fn decided(&self, decision: &Decision) {
        let counter = match decision.by {
            Decider::Policy(index) => self.policies.get(index),
            Decider::NoAllowMatch | Decider::Default if decision.allowed => {
                Some(&self.default_allow)
            }
            Decider::NoAllowMatch | Decider::Default => Some(&self.default_deny),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
    }

    /// Counts a match of the audit policy at `index`.
    pub fn audited(&self, index: usize) {
        if let Some(counter) = self.policies.get(index) {
            counter.inc();
        }
    }
}
