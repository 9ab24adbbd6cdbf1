//! The access log against a real file: a line per request, no headers, drops said, taps unaffected.

use std::net::IpAddr;

use http::{Method, Request};
use serde_json::Value;

use super::*;
use crate::telemetry::tap::{Direction, Ended, TapSpec, MAX_TAPS};

fn request(path: &str) -> Request<()> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "payment")
        .header("authorization", "Bearer secret-xyz")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap()
}

fn end(hub: &Arc<TapHub>, path: &str, status: u16, error: Option<&'static str>) {
    let tapping = hub
        .arrival(&request(path), Direction::Outbound)
        .expect("the log wants every request");
    let ended = Ended {
        listener: "outbound".into(),
        status,
        error,
        source_identity: None,
        client: IpAddr::from([127, 0, 0, 1]),
        responded: std::time::Instant::now(),
    };
    assert!(
        hub.offer(tapping, ended).is_none(),
        "the log shows no bodies"
    );
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn every_request_is_a_json_line_with_its_trace_and_never_its_headers() {
    let path = std::env::temp_dir().join(format!("meshpy-access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let hub = Arc::new(TapHub::default());
    let mut log = AccessLog::start(&hub, path.to_str().unwrap()).unwrap();
    let taps: Vec<_> = (0..MAX_TAPS)
        .map(|_| hub.open(&TapSpec::default()).unwrap())
        .collect();
    assert_eq!(taps.len(), MAX_TAPS, "the log is not one of the taps");
    end(&hub, "/charge", 200, None);
    end(&hub, "/charge", 503, Some("no_healthy_endpoints"));
    log.stop();
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!text.contains("secret-xyz"), "{text}");
    let got = lines(&text);
    assert_eq!(got.len(), 2, "{text}");
    assert_eq!(got[0]["path"], "/charge");
    assert_eq!(got[0]["method"], "POST");
    assert_eq!(got[0]["direction"], "outbound");
    assert_eq!(got[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        (got[0]["status"].clone(), got[1]["status"].clone()),
        (200.into(), 503.into())
    );
    assert_eq!(got[1]["error"], "no_healthy_endpoints");
    assert!(got[0].get("headers").is_none());
}

#[test]
fn lines_that_do_not_fit_the_queue_are_counted_in_the_log() {
    let hub = Arc::new(TapHub::default());
    let tap = hub.open_log(2).unwrap();
    for _ in 0..5 {
        end(&hub, "/x", 200, None);
    }
    let mut out = Vec::new();
    write_lines(tap, &mut out, &AtomicBool::new(true));
    let got = lines(&String::from_utf8(out).unwrap());
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], json!({"type": "dropped", "count": 3}));
}
