//! Tests of the metrics registry: listener handles feed the rendered text and share their counts.

use super::*;

#[test]
fn listener_handles_feed_the_registry() {
    let metrics = Metrics::new();
    let web = metrics.listener("web");
    web.request(200);
    web.request(204);
    web.request(503);
    web.error("no_endpoints");
    metrics.config_version.set(7);
    let text = metrics.render();
    assert!(
        text.contains(r#"meshpy_requests_total{listener="web",status_class="2xx"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"meshpy_requests_total{listener="web",status_class="5xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"meshpy_proxy_errors_total{listener="web",reason="no_endpoints"} 1"#),
        "{text}"
    );
    assert!(text.contains("meshpy_config_version 7"), "{text}");
    assert_eq!(web.requests_by_class(), [0, 2, 0, 0, 1]);
}

#[test]
fn handles_for_the_same_listener_share_counts() {
    let metrics = Metrics::new();
    metrics.listener("web").request(200);
    metrics.listener("web").request(200);
    assert_eq!(metrics.listener("web").requests_by_class()[1], 2);
}
