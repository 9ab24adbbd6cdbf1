//! Table tests of trace context: W3C and B3 parsing, malformed headers, sampling, and the headers written back.

use super::*;
use crate::rng::Chance;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn trace_id(hex_text: &str) -> TraceId {
    TraceId(hex_array(hex_text.as_bytes()).unwrap())
}

fn span_id(hex_text: &str) -> SpanId {
    SpanId(hex_array(hex_text.as_bytes()).unwrap())
}

fn w3c(sampled: bool) -> Incoming {
    Incoming::Parent(Parent {
        trace_id: trace_id(TRACE),
        span_id: span_id(SPAN),
        sampled: Some(sampled),
        format: Format::W3c,
        short_b3_trace_id: false,
    })
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn traceparent_parses_only_when_well_formed() {
    let ok = format!("00-{TRACE}-{SPAN}-01");
    let cases: Vec<(String, Option<Incoming>)> = vec![
        (ok.clone(), Some(w3c(true))),
        (format!("00-{TRACE}-{SPAN}-00"), Some(w3c(false))),
        // Flags other than sampled are ignored.
        (format!("00-{TRACE}-{SPAN}-02"), Some(w3c(false))),
        (format!("00-{TRACE}-{SPAN}-03"), Some(w3c(true))),
        // A later version may add fields after a dash; version 00 may not.
        (
            format!("01-{TRACE}-{SPAN}-01-what-comes-next"),
            Some(w3c(true)),
        ),
        (format!("cc-{TRACE}-{SPAN}-01"), Some(w3c(true))),
        (format!("00-{TRACE}-{SPAN}-01-extra"), None),
        (format!("01-{TRACE}-{SPAN}-01x"), None),
        // Version ff is invalid.
        (format!("ff-{TRACE}-{SPAN}-01"), None),
        // Upper-case hex is invalid.
        (format!("00-{}-{SPAN}-01", TRACE.to_uppercase()), None),
        (format!("00-{TRACE}-{}-01", SPAN.to_uppercase()), None),
        (
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            None,
        ),
        // All-zero ids are invalid.
        (format!("00-{}-{SPAN}-01", "0".repeat(32)), None),
        (format!("00-{TRACE}-{}-01", "0".repeat(16)), None),
        // Wrong lengths, separators and digits.
        (format!("00-{}-{SPAN}-01", &TRACE[1..]), None),
        (format!("00-{TRACE}-{SPAN}-1"), None),
        (format!("00_{TRACE}-{SPAN}-01"), None),
        (format!("00-{TRACE}-{SPAN}-0g"), None),
        (format!("00-{}g-{SPAN}-01", &TRACE[1..]), None),
        ("".into(), None),
        ("00".into(), None),
    ];
    for (value, expected) in cases {
        let parsed = parse_traceparent(&value).map(Incoming::Parent);
        assert_eq!(parsed, expected, "{value}");
    }
}

#[test]
fn b3_single_parses_ids_sampling_and_64_bit_trace_ids() {
    let parent = |trace: &str, sampled: Option<bool>, short: bool| {
        Some(Incoming::Parent(Parent {
            trace_id: trace_id(trace),
            span_id: span_id(SPAN),
            sampled,
            format: Format::B3Single,
            short_b3_trace_id: short,
        }))
    };
    let padded = format!("{}{}", "0".repeat(16), &TRACE[16..]);
    let cases: Vec<(String, Option<Incoming>)> = vec![
        (format!("{TRACE}-{SPAN}"), parent(TRACE, None, false)),
        (
            format!("{TRACE}-{SPAN}-1"),
            parent(TRACE, Some(true), false),
        ),
        (
            format!("{TRACE}-{SPAN}-0"),
            parent(TRACE, Some(false), false),
        ),
        (
            format!("{TRACE}-{SPAN}-d"),
            parent(TRACE, Some(true), false),
        ),
        (
            format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90"),
            parent(TRACE, Some(true), false),
        ),
        (
            format!("{}-{SPAN}-1", &TRACE[16..]),
            parent(&padded, Some(true), true),
        ),
        ("1".into(), Some(Incoming::SamplingOnly(true))),
        ("d".into(), Some(Incoming::SamplingOnly(true))),
        ("0".into(), Some(Incoming::SamplingOnly(false))),
        ("2".into(), None),
        (format!("{TRACE}-{SPAN}-2"), None),
        (format!("{TRACE}-{SPAN}-1-xyz"), None),
        (format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90-more"), None),
        (format!("{}-{SPAN}-1", TRACE.to_uppercase()), None),
        (format!("{}-{SPAN}-1", &TRACE[..20]), None),
        (format!("{}-{SPAN}-1", "0".repeat(32)), None),
        (format!("{TRACE}-{}-1", "0".repeat(16)), None),
        (format!("{TRACE}-"), None),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_b3_single(&value), expected, "{value}");
    }
}

#[test]
fn extract_prefers_w3c_then_b3_and_flags_what_does_not_parse() {
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let b3 = format!("{}-{SPAN}-0", "a".repeat(32));
    let multi_parent = |sampled| {
        Incoming::Parent(Parent {
            trace_id: trace_id(TRACE),
            span_id: span_id(SPAN),
            sampled,
            format: Format::B3Multi,
            short_b3_trace_id: false,
        })
    };
    let cases: Vec<(Vec<(&str, &str)>, Incoming)> = vec![
        (vec![], Incoming::None),
        (vec![("traceparent", &tp), ("b3", &b3)], w3c(true)),
        // Two traceparent headers are refused, as the spec says.
        (
            vec![("traceparent", &tp), ("traceparent", &tp)],
            Incoming::Malformed,
        ),
        (vec![("traceparent", "garbage")], Incoming::Malformed),
        // A malformed traceparent falls back to B3.
        (
            vec![("traceparent", "garbage"), ("b3", "1")],
            Incoming::SamplingOnly(true),
        ),
        (
            vec![
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
            multi_parent(Some(true)),
        ),
        (
            vec![
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "false"),
            ],
            multi_parent(Some(false)),
        ),
        (
            vec![
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-flags", "1"),
            ],
            multi_parent(Some(true)),
        ),
        (
            vec![("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)],
            multi_parent(None),
        ),
        (vec![("x-b3-traceid", TRACE)], Incoming::Malformed),
        (
            vec![
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "yes"),
            ],
            Incoming::Malformed,
        ),
        (vec![("b3", "1"), ("b3", "0")], Incoming::Malformed),
    ];
    for (pairs, expected) in cases {
        assert_eq!(read(&headers(&pairs)).0, expected, "{pairs:?}");
    }
}

/// A draw source that counts up from 1: ids are predictable, and a `Below` chance
/// of anything above the first draws hits.
fn counter() -> impl FnMut() -> u64 {
    let mut n = 0;
    move || {
        n += 1;
        n
    }
}

#[test]
fn a_hop_keeps_the_callers_decision_and_rolls_its_own_for_new_traces() {
    let never = Chance::Never;
    let always = Chance::Always;
    let half = Chance::percent(50.0);
    let cases = [
        // (incoming, chance, sampled)
        (w3c(true), never, true),
        (w3c(false), always, false),
        (Incoming::SamplingOnly(true), never, true),
        (Incoming::SamplingOnly(false), always, false),
        (Incoming::None, always, true),
        (Incoming::None, never, false),
        (Incoming::Malformed, always, true),
        // The counter's small draws fall under any chance above zero.
        (Incoming::None, half, true),
    ];
    for (incoming, chance, sampled) in cases {
        let hop = start((incoming, Seen::default()), chance, counter());
        assert_eq!(hop.sampled, sampled, "{incoming:?} at {chance:?}");
        assert_ne!(hop.span_id.0, [0; 8]);
    }
    // A deferred B3 decision is rolled here.
    let Incoming::Parent(mut deferred) = w3c(true) else {
        unreachable!()
    };
    deferred.sampled = None;
    assert!(
        start(
            (Incoming::Parent(deferred), Seen::default()),
            always,
            counter()
        )
        .sampled
    );
    assert!(
        !start(
            (Incoming::Parent(deferred), Seen::default()),
            never,
            counter()
        )
        .sampled
    );
    // A continued trace keeps its id and names the caller's span as the parent.
    let hop = start((w3c(true), Seen::default()), never, counter());
    assert_eq!(
        (hop.trace_id, hop.parent),
        (trace_id(TRACE), Some(span_id(SPAN)))
    );
    assert_ne!(hop.span_id, span_id(SPAN));
    // A new one has none.
    let hop = start((Incoming::Malformed, Seen::default()), never, counter());
    assert_eq!(hop.parent, None);
    assert_ne!(hop.trace_id.0, [0; 16]);
}

#[test]
fn ids_are_never_zero() {
    let mut draws = [0, 0, 0, 7].into_iter();
    assert_eq!(
        TraceId::random(|| draws.next().unwrap()).0,
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
    );
    let mut draws = [0, 9].into_iter();
    assert_eq!(
        SpanId::random(|| draws.next().unwrap()).0,
        [0, 0, 0, 0, 0, 0, 0, 9]
    );
}

fn header<'h>(map: &'h HeaderMap, name: &str) -> Option<&'h str> {
    map.get(name).map(|value| value.to_str().unwrap())
}

/// Request headers as (name, value) pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;
/// Headers expected after injection: a value, or `None` for absent.
type Expected = Vec<(&'static str, Option<String>)>;

#[test]
fn inject_writes_traceparent_and_the_b3_form_that_came_in() {
    let new_span = "0000000000000001";
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let short_b3 = format!("{}-{SPAN}-0", &TRACE[16..]);
    // The counter's second and third draws make the new trace id.
    let counted_trace = format!("{}2{}3", "0".repeat(15), "0".repeat(15));
    let cases: Vec<(Headers, Expected)> = vec![
        (
            vec![("traceparent", &tp), ("tracestate", "a=1")],
            vec![
                ("traceparent", Some(format!("00-{TRACE}-{new_span}-01"))),
                ("tracestate", Some("a=1".into())),
                ("b3", None),
            ],
        ),
        (
            vec![("b3", &short_b3), ("tracestate", "a=1")],
            vec![
                (
                    "traceparent",
                    Some(format!(
                        "00-{}{}-{new_span}-00",
                        "0".repeat(16),
                        &TRACE[16..]
                    )),
                ),
                ("b3", Some(format!("{}-{new_span}-0", &TRACE[16..]))),
                // Without a valid traceparent, tracestate means nothing.
                ("tracestate", None),
            ],
        ),
        (
            vec![
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-flags", "1"),
            ],
            vec![
                ("traceparent", Some(format!("00-{TRACE}-{new_span}-01"))),
                ("x-b3-traceid", Some(TRACE.into())),
                ("x-b3-spanid", Some(new_span.into())),
                ("x-b3-parentspanid", Some(SPAN.into())),
                ("x-b3-sampled", Some("1".into())),
                ("x-b3-flags", None),
                ("b3", None),
            ],
        ),
        (
            // Malformed: a new trace, and none of the bad headers passed on.
            vec![
                ("traceparent", "00-bad"),
                ("x-b3-traceid", "zz"),
                ("tracestate", "a=1"),
            ],
            vec![
                ("x-b3-traceid", None),
                ("tracestate", None),
                (
                    "traceparent",
                    Some(format!("00-{counted_trace}-{new_span}-00")),
                ),
            ],
        ),
    ];
    for (pairs, expected) in cases {
        let mut map = headers(&pairs);
        let hop = start(read(&map), Chance::Never, counter());
        inject(&hop, &mut map);
        for (name, value) in expected {
            assert_eq!(header(&map, name), value.as_deref(), "{pairs:?}: {name}");
        }
    }
}

#[test]
fn an_unsampled_w3c_trace_passes_through_untouched() {
    let unsampled = format!("00-{TRACE}-{SPAN}-00");
    let sampled = format!("00-{TRACE}-{SPAN}-01");
    let cases: Vec<(Headers, bool)> = vec![
        // (request's headers, passed through as they came)
        (vec![("traceparent", &unsampled)], true),
        (
            vec![("traceparent", &unsampled), ("tracestate", "a=1")],
            true,
        ),
        (vec![("traceparent", &sampled)], false),
        // B3 beside W3C is dropped, so the headers change.
        (
            vec![("traceparent", &unsampled), ("x-b3-sampled", "0")],
            false,
        ),
        (vec![("traceparent", &unsampled), ("b3", "0")], false),
        // A new trace is written even when it is not sampled.
        (vec![], false),
        (vec![("traceparent", "00-bad")], false),
    ];
    for (pairs, untouched) in cases {
        let before = headers(&pairs);
        let mut map = before.clone();
        let hop = start(read(&map), Chance::Never, counter());
        assert_eq!(hop.passes_through(), untouched, "{pairs:?}");
        inject(&hop, &mut map);
        assert_eq!(map == before, untouched, "{pairs:?}: {map:?}");
    }
}

#[test]
fn each_trace_header_has_its_own_bit() {
    for (i, name) in TRACE_HEADERS.iter().enumerate() {
        assert_eq!(trace_header(name), Some(i), "{name}");
    }
    assert_eq!(trace_header(&http::header::CONTENT_TYPE), None);
    assert_eq!(
        Seen::B3_ANY.count_ones(),
        6,
        "b3 and the five x-b3-* headers"
    );
}

#[test]
fn only_the_trace_headers_a_request_came_with_are_seen() {
    let map = headers(&[
        ("x-b3-flags", "1"),
        ("content-type", "text/plain"),
        ("tracestate", "a=1"),
    ]);
    let (_, seen) = read(&map);
    for name in [&X_B3_FLAGS, &TRACESTATE] {
        assert!(seen.has(name), "{name}");
    }
    for name in [
        &TRACEPARENT,
        &B3,
        &X_B3_TRACEID,
        &X_B3_SPANID,
        &X_B3_SAMPLED,
    ] {
        assert!(!seen.has(name), "{name}");
    }
    assert!(!seen.has(&http::header::CONTENT_TYPE));
}

#[test]
fn trace_headers_written_are_never_indexed_by_hpack() {
    let mut map = HeaderMap::new();
    inject(
        &start((Incoming::None, Seen::default()), Chance::Always, counter()),
        &mut map,
    );
    assert!(map[&TRACEPARENT].is_sensitive());
}

#[test]
fn hex_is_lower_case_and_round_trips() {
    let bytes = [0x00, 0x0f, 0xa0, 0xff];
    assert_eq!(&hex::<4, 8>(&bytes), b"000fa0ff");
    assert_eq!(hex_array::<4>(b"000fa0ff"), Some(bytes));
    assert_eq!(hex_array::<4>(b"000FA0FF"), None);
    assert_eq!(hex_array::<4>(b"000fa0f"), None);
}
