//! One cluster's metric handles: outlier ejections, retries, and the mirrors it receives.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::edge::{EdgeEvent, EdgeRequests};
use super::{ClusterLabel, ClusterResultLabels, Metrics};

impl Metrics {
    /// Outlier detection handles of one cluster; the same for every version of it.
    /// Its ejections are also counted on `edge`, the edge to it.
    pub fn outlier(&self, cluster: &str, edge: &Arc<EdgeRequests>) -> OutlierMetrics {
        let label = ClusterLabel {
            cluster: cluster.to_string(),
        };
        OutlierMetrics {
            ejections: self.outlier_ejections.get_or_create(&label).clone(),
            ejected: self.outlier_ejected.get_or_create(&label).clone(),
            edge: Some(Arc::clone(edge)),
        }
    }

    /// Retry counters of one cluster, resolved when a snapshot is applied.
    pub fn retries(&self, cluster: &str) -> RetryCounters {
        let counter = |result| {
            self.retries
                .get_or_create(&ClusterResultLabels {
                    cluster: cluster.to_string(),
                    result,
                })
                .clone()
        };
        RetryCounters {
            sent: counter("sent"),
            budget_exhausted: counter("budget_exhausted"),
        }
    }

    /// Mirror counters of one cluster (as the target of mirrors), resolved when a snapshot is applied.
    pub fn mirrors(&self, cluster: &str) -> MirrorCounters {
        let counter = |result| {
            self.mirrors
                .get_or_create(&ClusterResultLabels {
                    cluster: cluster.to_string(),
                    result,
                })
                .clone()
        };
        MirrorCounters {
            sent: counter("sent"),
            failed: counter("failed"),
            dropped: counter("dropped"),
        }
    }
}

/// Outlier detection handles of one cluster.
#[derive(Debug, Clone, Default)]
pub struct OutlierMetrics {
    /// Ejections so far.
    ejections: Counter,
    /// Endpoints ejected now; also the count `max_ejection_percent` is checked against.
    pub ejected: Gauge,
    /// The edge to the cluster, where ejections are counted too.
    edge: Option<Arc<EdgeRequests>>,
}

impl OutlierMetrics {
    /// Counts an ejection, by cluster and on the edge to the cluster.
    pub fn ejection(&self) {
        self.ejections.inc();
        if let Some(edge) = &self.edge {
            edge.count(EdgeEvent::Ejection);
        }
    }
}

/// Retries of one cluster.
#[derive(Debug, Clone, Default)]
pub struct RetryCounters {
    /// Retries sent.
    pub sent: Counter,
    /// Retries not sent because the cluster's budget was spent.
    pub budget_exhausted: Counter,
}

/// Mirrored requests to one cluster.
#[derive(Debug, Clone, Default)]
pub struct MirrorCounters {
    /// Copies that got a response (of any status).
    pub sent: Counter,
    /// Copies that got no response (connect failure, timeout).
    pub failed: Counter,
    /// Copies not made: too many in flight, or a body that was not buffered.
    pub dropped: Counter,
}
