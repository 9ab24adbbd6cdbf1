//! Tests of a cluster's traffic policies: the mirror gate's limit, faults compiled from config.

use super::*;

#[test]
fn the_mirror_gate_holds_at_most_the_limit() {
    let gate = Arc::new(MirrorGate::default());
    let slots: Vec<_> = (0..MAX_MIRRORS_IN_FLIGHT)
        .map(|_| gate.enter().unwrap())
        .collect();
    assert!(gate.enter().is_none());
    assert_eq!(gate.in_flight(), MAX_MIRRORS_IN_FLIGHT);
    drop(slots);
    assert_eq!(gate.in_flight(), 0);
    assert!(gate.enter().is_some());
}

#[test]
fn faults_compile_from_config() {
    let cfg: config::Fault = serde_json::from_value(serde_json::json!({
        "delay": {"percent": 100, "duration": "20ms"},
        "abort": {"percent": 0, "status": 503}
    }))
    .unwrap();
    let fault = FaultPolicy::compile(&cfg);
    assert_eq!(
        fault.roll(),
        (Some(Duration::from_millis(20)), None),
        "{fault:?}"
    );
}
