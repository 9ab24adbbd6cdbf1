//! Tests of the HTTP/2 guard: frame headers found however the bytes are split, control frames, the budget.

use super::*;

fn frame(kind: u8, len: u32) -> Vec<u8> {
    let mut bytes = len.to_be_bytes()[1..].to_vec();
    let flags = if kind == DATA { END_STREAM } else { 0 };
    bytes.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
    bytes.resize(FRAME_HEADER_LEN + len as usize, 0xab);
    bytes
}

fn scan_in_pieces(stream: &[u8], piece: usize) -> Vec<(u8, u8, u32)> {
    let mut scanner = FrameScanner::default();
    let mut seen = Vec::new();
    for chunk in stream.chunks(piece) {
        scanner.feed(chunk, |kind, flags, len| {
            seen.push((kind, flags, len));
            true
        });
    }
    seen
}

#[test]
fn frame_headers_are_found_however_the_bytes_are_split() {
    let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    stream.extend(frame(SETTINGS, 12));
    stream.extend(frame(0x1, 40)); // HEADERS
    stream.extend(frame(DATA, 0));
    stream.extend(frame(PING, 8));
    stream.extend(frame(WINDOW_UPDATE, 4));
    let want = vec![
        (SETTINGS, 0, 12),
        (1, 0, 40),
        (DATA, END_STREAM, 0),
        (PING, 0, 8),
        (WINDOW_UPDATE, 0, 4),
    ];
    for piece in [1, 2, 5, 9, 10, 24, 1000] {
        assert_eq!(scan_in_pieces(&stream, piece), want, "pieces of {piece}");
    }
}

#[test]
fn control_frames_are_the_ones_that_carry_no_request() {
    // (kind, flags, payload length, charged)
    let cases = [
        (PING, 0, 8, true),
        (SETTINGS, 0, 0, true),
        (SETTINGS, 0, 6, true),
        (WINDOW_UPDATE, 0, 4, true),
        (PRIORITY, 0, 5, true),
        (DATA, 0, 0, true),
        (DATA, END_STREAM, 0, false), // the end of a request body
        (DATA, 0, 1, false),
        (0x1, 0, 30, false), // HEADERS
        (0x3, 0, 4, false),  // RST_STREAM: the h2 crate limits resets itself
        (0x7, 0, 8, false),  // GOAWAY
        (0x9, 0, 10, false), // CONTINUATION
    ];
    for (kind, flags, len, want) in cases {
        assert_eq!(
            is_control_frame(kind, flags, len),
            want,
            "kind {kind} flags {flags} len {len}"
        );
    }
}

#[test]
fn the_budget_allows_a_burst_then_refills_with_time_and_data_sent() {
    let mut budget = Budget::new(0);
    for _ in 0..BURST {
        assert!(budget.charge(0, 0));
    }
    assert!(!budget.charge(0, 0), "the burst is spent");
    // One second later: PER_SECOND more.
    for _ in 0..PER_SECOND {
        assert!(budget.charge(1000, 0));
    }
    assert!(!budget.charge(1000, 0));
    // A download earns one frame per SENT_BYTES_PER_FRAME.
    let sent = 100 * SENT_BYTES_PER_FRAME;
    for _ in 0..100 {
        assert!(budget.charge(1000, sent));
    }
    assert!(!budget.charge(1000, sent));
    // Never more than a burst, however long the client was quiet.
    let mut rested = Budget::new(0);
    let mut allowed = 0;
    while rested.charge(3_600_000, 0) {
        allowed += 1;
    }
    assert_eq!(allowed, BURST);
}
