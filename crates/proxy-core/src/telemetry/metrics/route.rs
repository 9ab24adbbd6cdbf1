//! Requests by the HTTP route and rule that matched them, in a family apart from the edges' so that routes do not multiply the histograms' series.
//!
//! A listener's [`RouteRequests`] is made with its route table, one entry per rule of
//! each route and per service the rule's backends go to; labels come only from the
//! snapshot (route names, rule positions, services) and the status code. A request
//! that matched no rule is counted with empty `route` and `rule`. As for the edges, a
//! handle per common status code is resolved on first use; a request then costs an
//! index, a comparison of its destination with the rule's few, and an atomic add.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::edge::{Direction, CODES};
use super::Metrics;
use crate::policy::route::MatchedAt;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteRequestLabels {
    direction: &'static str,
    destination_service: Arc<str>,
    route: Arc<str>,
    rule: Arc<str>,
    http_response_status_code: u16,
}

/// One route of a listener, as its requests are counted: its name, and for each of
/// its rules the services its backends go to.
#[derive(Debug, Clone)]
pub struct RouteShape {
    /// The route's (virtual host's) name.
    pub name: String,
    /// Per rule, in config order: the destination services of its backends.
    pub rules: Vec<Vec<Arc<str>>>,
}

/// A listener's requests by route, rule, destination service and status code.
#[derive(Debug)]
pub struct RouteRequests {
    family: Family<RouteRequestLabels, Counter>,
    direction: &'static str,
    /// By route, then rule: the positions in `MatchedAt`.
    rules: Vec<Vec<RuleRequests>>,
    /// Requests no rule matched.
    unmatched: RuleRequests,
}

#[derive(Debug)]
struct RuleRequests {
    route: Arc<str>,
    rule: Arc<str>,
    destinations: Vec<Destination>,
}

#[derive(Debug)]
struct Destination {
    service: Arc<str>,
    /// A handle per one of [`CODES`], made on the first request.
    slots: OnceLock<Box<[OnceLock<Counter>]>>,
}

impl Destination {
    fn new(service: Arc<str>) -> Self {
        Self {
            service,
            slots: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// The route counters of a listener of `direction` with `routes`; `unmatched` is
    /// the destination of requests no rule matched (the workload inbound).
    pub fn route_requests(
        &self,
        direction: Direction,
        routes: &[RouteShape],
        unmatched: &str,
    ) -> RouteRequests {
        let rules = routes
            .iter()
            .map(|route| {
                let name: Arc<str> = Arc::from(route.name.as_str());
                route
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, services)| {
                        let mut destinations: Vec<Destination> = Vec::new();
                        for service in services {
                            if !destinations.iter().any(|d| d.service == *service) {
                                destinations.push(Destination::new(Arc::clone(service)));
                            }
                        }
                        RuleRequests {
                            route: Arc::clone(&name),
                            rule: Arc::from(index.to_string()),
                            destinations,
                        }
                    })
                    .collect()
            })
            .collect();
        let empty: Arc<str> = Arc::from("");
        RouteRequests {
            family: self.route_requests.clone(),
            direction: direction.label(),
            rules,
            unmatched: RuleRequests {
                route: Arc::clone(&empty),
                rule: empty,
                destinations: vec![Destination::new(Arc::from(unmatched))],
            },
        }
    }
}

impl RouteRequests {
    /// Counts a request that `at` matched (`None`: no rule did), to `destination`
    /// (its edge's destination service), answered with `status`.
    pub fn count(&self, at: Option<MatchedAt>, destination: &str, status: u16) {
        let rule = at
            .and_then(|at| self.rules.get(at.vhost)?.get(at.rule))
            .unwrap_or(&self.unmatched);
        let resolve = |service: &Arc<str>| {
            self.family.get_or_create_owned(&RouteRequestLabels {
                direction: self.direction,
                destination_service: Arc::clone(service),
                route: Arc::clone(&rule.route),
                rule: Arc::clone(&rule.rule),
                http_response_status_code: status,
            })
        };
        let found = rule
            .destinations
            .iter()
            .find(|d| &*d.service == destination);
        match (found, slot_of(status)) {
            (Some(to), Some(code)) => {
                let slots = to
                    .slots
                    .get_or_init(|| (0..CODES.len()).map(|_| OnceLock::new()).collect());
                if let Some(slot) = slots.get(code) {
                    slot.get_or_init(|| resolve(&to.service)).inc();
                }
            }
            // A rare code, or a destination the snapshot did not give the rule: found
            // in the family, which takes its lock.
            (Some(to), None) => {
                resolve(&to.service).inc();
            }
            (None, _) => {
                resolve(&Arc::from(destination)).inc();
            }
        }
    }
}

/// The slot of `status` among [`CODES`], if it has one.
fn slot_of(status: u16) -> Option<usize> {
    CODES.iter().position(|code| *code == status)
}

#[cfg(test)]
mod tests;
