//! Tests of route metrics: requests land on their route, rule, destination and code, and unmatched ones on empty labels.

use super::*;

fn shapes() -> Vec<RouteShape> {
    let service = |name: &str| -> Arc<str> { Arc::from(name) };
    vec![
        RouteShape {
            name: "payment".into(),
            rules: vec![
                vec![service("payment")],
                // A split: two clusters of one service, and another service.
                vec![service("payment"), service("payment"), service("refunds")],
            ],
        },
        RouteShape {
            name: "cart".into(),
            rules: vec![vec![service("cart")]],
        },
    ]
}

fn at(vhost: usize, rule: usize) -> Option<MatchedAt> {
    Some(MatchedAt {
        vhost,
        rule,
        matched: None,
    })
}

#[test]
fn requests_land_on_their_route_rule_destination_and_code() {
    let metrics = Metrics::new();
    let routes = metrics.route_requests(Direction::Outbound, &shapes(), "unknown");
    let cases: [(Option<MatchedAt>, &str, u16); 8] = [
        (at(0, 0), "payment", 200),
        (at(0, 0), "payment", 200),
        (at(0, 1), "payment", 503),
        (at(0, 1), "refunds", 200),
        (at(1, 0), "cart", 299),
        (None, "unknown", 404),
        // Positions past the table count as unmatched, never a panic.
        (at(7, 0), "unknown", 404),
        (at(0, 9), "unknown", 404),
    ];
    for (at, destination, status) in cases {
        routes.count(at, destination, status);
    }
    let text = metrics.render();
    for (labels, count) in [
        ("destination_service=\"payment\",route=\"payment\",rule=\"0\",http_response_status_code=\"200\"", 2),
        ("destination_service=\"payment\",route=\"payment\",rule=\"1\",http_response_status_code=\"503\"", 1),
        ("destination_service=\"refunds\",route=\"payment\",rule=\"1\",http_response_status_code=\"200\"", 1),
        ("destination_service=\"cart\",route=\"cart\",rule=\"0\",http_response_status_code=\"299\"", 1),
        ("destination_service=\"unknown\",route=\"\",rule=\"\",http_response_status_code=\"404\"", 3),
    ] {
        let line = format!("meshpy_route_requests_total{{direction=\"outbound\",{labels}}} {count}\n");
        assert!(text.contains(&line), "missing {line}\nin:\n{text}");
    }
    assert_eq!(
        text.matches("meshpy_route_requests_total{").count(),
        5,
        "{text}"
    );
}

#[test]
fn a_destination_the_rule_does_not_name_is_counted_all_the_same() {
    let metrics = Metrics::new();
    let routes = metrics.route_requests(Direction::Inbound, &shapes(), "payment");
    routes.count(at(1, 0), "elsewhere", 200);
    assert!(metrics.render().contains(
        "meshpy_route_requests_total{direction=\"inbound\",destination_service=\"elsewhere\",\
         route=\"cart\",rule=\"0\",http_response_status_code=\"200\"} 1\n"
    ));
}
