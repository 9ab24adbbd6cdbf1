//! Trace context as pure functions: W3C `traceparent`/`tracestate` and B3 read from
//! a request's headers, this hop's span started from it, and written back.
//!
//! W3C Trace Context is read first, then B3 (the single `b3` header, else the
//! `x-b3-*` headers). A malformed context never fails a request: the hop starts a
//! new trace instead. The context goes on in every format the request came with
//! (W3C always), carrying this hop's span id as the parent of the next; a W3C trace
//! the caller did not sample goes on untouched.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::rng::Chance;

/// `traceparent`: version, trace id, parent span id and flags (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`: vendors' entries, passed on as they came with a valid `traceparent`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `b3`: B3's single-header form.
pub static B3: HeaderName = HeaderName::from_static("b3");
/// `x-b3-traceid`, one of B3's multi-header form, as are the four after it.
pub static X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `x-b3-spanid`.
pub static X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `x-b3-parentspanid`.
pub static X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `x-b3-sampled`.
pub static X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// `x-b3-flags`: `1` is B3's debug flag, which implies sampled.
pub static X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// A 128-bit trace id, never all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id, never all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random trace id from `next` (uniform `u64`s), redrawn in the unlikely case of zero.
    pub fn random(mut next: impl FnMut() -> u64) -> Self {
        loop {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&next().to_be_bytes());
            bytes[8..].copy_from_slice(&next().to_be_bytes());
            if bytes != [0; 16] {
                return Self(bytes);
            }
        }
    }
}

impl SpanId {
    /// A random span id from `next` (uniform `u64`s), redrawn in the unlikely case of zero.
    pub fn random(mut next: impl FnMut() -> u64) -> Self {
        loop {
            let bytes = next().to_be_bytes();
            if bytes != [0; 8] {
                return Self(bytes);
            }
        }
    }
}

/// The header format a trace context came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `traceparent` (and `tracestate`).
    W3c,
    /// The single `b3` header.
    B3Single,
    /// The `x-b3-*` headers.
    B3Multi,
}

/// The caller's span, as its headers named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// The caller's span: the parent of this hop's.
    pub span_id: SpanId,
    /// The caller's sampling decision; `None` leaves it to this hop (B3's "defer").
    pub sampled: Option<bool>,
    /// Where it was read.
    pub format: Format,
    /// A B3 trace id of 64 bits (16 hex digits), written back in that length.
    pub short_b3_trace_id: bool,
}

/// What a request's headers say about its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// No trace headers: this hop starts the trace.
    None,
    /// A caller's span to continue.
    Parent(Parent),
    /// B3's sampling-only form (`b3: 0`, `1` or `d`): a new trace with that decision.
    SamplingOnly(bool),
    /// Trace headers that do not parse: a new trace, and the bad headers replaced.
    Malformed,
}

/// The trace headers, in the order of [`Seen`]'s bits.
static TRACE_HEADERS: [&HeaderName; 8] = [
    &TRACEPARENT,
    &TRACESTATE,
    &B3,
    &X_B3_TRACEID,
    &X_B3_SPANID,
    &X_B3_PARENTSPANID,
    &X_B3_SAMPLED,
    &X_B3_FLAGS,
];

/// The position of a trace header in [`TRACE_HEADERS`], or None for any other header.
/// A match on the text rather than a search of the array: it runs for every header of
/// every request (a table test keeps the two in step).
fn trace_header(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "traceparent" => Some(0),
        "tracestate" => Some(1),
        "b3" => Some(2),
        "x-b3-traceid" => Some(3),
        "x-b3-spanid" => Some(4),
        "x-b3-parentspanid" => Some(5),
        "x-b3-sampled" => Some(6),
        "x-b3-flags" => Some(7),
        _ => None,
    }
}

/// Which trace headers a request came with, one bit per name of [`TRACE_HEADERS`]:
/// what writing the context back must remove, and whether it can leave them alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen(u16);

impl Seen {
    /// Any B3 header, single or multi.
    const B3_ANY: u16 = 0b1111_1100;

    /// Whether the request had `name` (one of the trace headers).
    pub fn has(self, name: &HeaderName) -> bool {
        trace_header(name).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    fn any_b3(self) -> bool {
        self.0 & Self::B3_ANY != 0
    }
}

/// A request's trace headers, found in one pass over its headers (cheaper than a
/// lookup by name for each of the eight, on every request).
#[derive(Debug, Default)]
struct TraceHeaders<'h> {
    /// The value of each name seen once; `None` for none, or for several.
    values: [Option<&'h HeaderValue>; 8],
    seen: Seen,
    repeated: u16,
}

impl<'h> TraceHeaders<'h> {
    fn scan(headers: &'h HeaderMap) -> Self {
        let mut found = Self::default();
        for (name, value) in headers {
            let Some(i) = trace_header(name) else {
                continue;
            };
            if found.seen.0 & (1 << i) != 0 {
                found.repeated |= 1 << i;
            }
            found.seen.0 |= 1 << i;
            found.values[i] = Some(value);
        }
        found
    }

    /// `Some(Some(value))` for one header `name`, `Some(None)` for several (which the
    /// formats refuse) or a value that is not text, `None` for none.
    fn single(&self, name: &HeaderName) -> Option<Option<&'h str>> {
        let i = trace_header(name)?;
        if self.seen.0 & (1 << i) == 0 {
            return None;
        }
        if self.repeated & (1 << i) != 0 {
            return Some(None);
        }
        Some(self.values[i].and_then(|value| value.to_str().ok()))
    }
}

/// The trace context of a request (W3C first, then B3 single, then B3 multi), and
/// which trace headers it came with.
pub fn read(headers: &HeaderMap) -> (Incoming, Seen) {
    let found = TraceHeaders::scan(headers);
    (parse(&found), found.seen)
}

fn parse(found: &TraceHeaders<'_>) -> Incoming {
    if found.seen == Seen::default() {
        return Incoming::None;
    }
    let mut malformed = false;
    match found
        .single(&TRACEPARENT)
        .map(|value| value.and_then(parse_traceparent))
    {
        Some(Some(parent)) => return Incoming::Parent(parent),
        Some(None) => malformed = true,
        None => {}
    }
    match found
        .single(&B3)
        .map(|value| value.and_then(parse_b3_single))
    {
        Some(Some(found)) => return found,
        Some(None) => malformed = true,
        None => {}
    }
    if found.seen.has(&X_B3_TRACEID) || found.seen.has(&X_B3_SPANID) {
        match parse_b3_multi(found) {
            Some(parent) => return Incoming::Parent(parent),
            None => malformed = true,
        }
    }
    if malformed {
        Incoming::Malformed
    } else {
        Incoming::None
    }
}

/// Parses `traceparent` (W3C Trace Context §3.2): lower-case hex only, version `ff`
/// refused, ids not all zero. A version above `00` may carry more fields after a
/// `-`; only the four known ones are read.
pub fn parse_traceparent(value: &str) -> Option<Parent> {
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return None;
    }
    let version = hex_byte(&bytes[0..2])?;
    let longer_ok = version != 0 && (bytes.len() == 55 || bytes[55] == b'-');
    if version == 0xff || (bytes.len() != 55 && !longer_ok) {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = TraceId(hex_array(&bytes[3..35])?);
    let span_id = SpanId(hex_array(&bytes[36..52])?);
    let flags = hex_byte(&bytes[53..55])?;
    if trace_id.0 == [0; 16] || span_id.0 == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
        format: Format::W3c,
        short_b3_trace_id: false,
    })
}

/// Parses the single `b3` header: `{trace}-{span}[-{sampling}[-{parent}]]`, or a
/// sampling state alone (`0`, `1`, `d`).
pub fn parse_b3_single(value: &str) -> Option<Incoming> {
    let mut fields = value.split('-');
    let first = fields.next()?;
    let Some(span) = fields.next() else {
        return b3_sampling(first).map(Incoming::SamplingOnly);
    };
    let (trace_id, short) = parse_b3_trace_id(first)?;
    let span_id = SpanId(hex_array(span.as_bytes())?);
    let sampled = match fields.next() {
        None => None,
        Some(state) => Some(b3_sampling(state)?),
    };
    if let Some(parent) = fields.next() {
        // Checked only: the caller's parent is no concern of this hop.
        hex_array::<8>(parent.as_bytes())?;
    }
    if fields.next().is_some() || span_id.0 == [0; 8] {
        return None;
    }
    Some(Incoming::Parent(Parent {
        trace_id,
        span_id,
        sampled,
        format: Format::B3Single,
        short_b3_trace_id: short,
    }))
}

/// Parses the `x-b3-*` headers: trace and span ids both required, each once.
fn parse_b3_multi(headers: &TraceHeaders<'_>) -> Option<Parent> {
    let (trace_id, short) = parse_b3_trace_id(headers.single(&X_B3_TRACEID)??)?;
    let span_id = SpanId(hex_array(headers.single(&X_B3_SPANID)??.as_bytes())?);
    if span_id.0 == [0; 8] {
        return None;
    }
    let debug = headers.single(&X_B3_FLAGS).flatten() == Some("1");
    let sampled = match headers.single(&X_B3_SAMPLED) {
        None => None,
        Some(value) => Some(match value? {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return None,
        }),
    };
    Some(Parent {
        trace_id,
        span_id,
        sampled: if debug { Some(true) } else { sampled },
        format: Format::B3Multi,
        short_b3_trace_id: short,
    })
}

/// A B3 trace id: 32 hex digits, or 16 (a 64-bit id, its high half zero).
fn parse_b3_trace_id(text: &str) -> Option<(TraceId, bool)> {
    let mut bytes = [0u8; 16];
    let short = match text.len() {
        32 => {
            bytes = hex_array(text.as_bytes())?;
            false
        }
        16 => {
            bytes[8..].copy_from_slice(&hex_array::<8>(text.as_bytes())?);
            true
        }
        _ => return None,
    };
    (bytes != [0; 16]).then_some((TraceId(bytes), short))
}

/// B3's sampling state: `1` sampled, `0` not, `d` debug (sampled).
fn b3_sampling(state: &str) -> Option<bool> {
    match state {
        "1" | "d" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// The value of each byte as a lower-case hex digit; 0xff for any other byte. A table,
/// rather than ranges, because every continued trace parses 50 digits per request.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut digit = 0;
    while digit < 16 {
        let ascii = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        table[ascii as usize] = digit;
        digit += 1;
    }
    table
};

/// One byte of two lower-case hex digits.
fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [high, low] => {
            let (high, low) = (HEX_VALUE[usize::from(*high)], HEX_VALUE[usize::from(*low)]);
            // A digit's value fits in 4 bits; 0xff does not.
            ((high | low) < 16).then_some(high << 4 | low)
        }
        _ => None,
    }
}

/// `N` bytes from exactly `2N` lower-case hex digits.
fn hex_array<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Checked once at the end rather than per digit: no branch in the loop.
    let mut any = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        any |= high | low;
        *byte = high << 4 | (low & 0xf);
    }
    (any < 16).then_some(out)
}

/// This hop's span in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The trace, continued or started here.
    pub trace_id: TraceId,
    /// This hop's span, the parent the next hop sees.
    pub span_id: SpanId,
    /// The caller's span, if the trace came from one.
    pub parent: Option<SpanId>,
    /// Whether the trace is sampled: the caller's decision, else this hop's roll.
    pub sampled: bool,
    /// The formats to write the context back in (W3C always).
    pub b3: Option<Format>,
    /// Write a B3 trace id back in 16 hex digits.
    pub short_b3_trace_id: bool,
    /// The request's `tracestate` is kept (it came with a valid `traceparent`).
    pub keep_tracestate: bool,
    /// The trace headers the request came with.
    pub seen: Seen,
}

impl Hop {
    /// Whether the request's trace headers go on as they came: a W3C trace that the
    /// caller did not sample, without B3. Nothing of this hop is recorded unless it
    /// fails, and then its span's parent is still the caller's, so rewriting the
    /// headers would only cost every unsampled request.
    pub fn passes_through(&self) -> bool {
        !self.sampled && self.keep_tracestate && self.b3.is_none() && !self.seen.any_b3()
    }
}

/// Starts this hop's span: continues `incoming`'s trace, or starts one sampled at
/// `sample` (rolled with a draw of `next`, which also draws the new ids).
pub fn start(
    (incoming, seen): (Incoming, Seen),
    sample: Chance,
    mut next: impl FnMut() -> u64,
) -> Hop {
    let span_id = SpanId::random(&mut next);
    let roll = |next: &mut dyn FnMut() -> u64| match sample {
        Chance::Never => false,
        Chance::Always => true,
        Chance::Below(_) => sample.hit(next()),
    };
    match incoming {
        Incoming::Parent(parent) => Hop {
            trace_id: parent.trace_id,
            span_id,
            parent: Some(parent.span_id),
            sampled: parent.sampled.unwrap_or_else(|| roll(&mut next)),
            b3: (parent.format != Format::W3c).then_some(parent.format),
            short_b3_trace_id: parent.short_b3_trace_id,
            keep_tracestate: parent.format == Format::W3c,
            seen,
        },
        Incoming::SamplingOnly(sampled) => Hop {
            trace_id: TraceId::random(&mut next),
            span_id,
            parent: None,
            sampled,
            b3: Some(Format::B3Single),
            short_b3_trace_id: false,
            keep_tracestate: false,
            seen,
        },
        Incoming::None | Incoming::Malformed => Hop {
            trace_id: TraceId::random(&mut next),
            span_id,
            parent: None,
            sampled: roll(&mut next),
            b3: None,
            short_b3_trace_id: false,
            keep_tracestate: false,
            seen,
        },
    }
}

/// Writes `hop`'s context into the request's headers for the next hop: `traceparent`
/// always, B3 in the form it came in, and no trace header left from before that
/// this hop did not validate; or, for a hop that [passes through](Hop::passes_through),
/// nothing.
pub fn inject(hop: &Hop, headers: &mut HeaderMap) {
    if hop.passes_through() {
        return;
    }
    // Only the names the request came with: most come with none. `traceparent`
    // is overwritten below.
    for (i, &name) in TRACE_HEADERS.iter().enumerate().skip(1) {
        let kept = name == TRACESTATE && hop.keep_tracestate;
        if hop.seen.0 & (1 << i) != 0 && !kept {
            headers.remove(name);
        }
    }
    headers.insert(TRACEPARENT.clone(), traceparent(hop));
    let trace_hex = hex::<16, 32>(&hop.trace_id.0);
    let trace_text: &[u8] = if hop.short_b3_trace_id {
        &trace_hex[16..]
    } else {
        &trace_hex
    };
    let span_hex = hex::<8, 16>(&hop.span_id.0);
    let sampled: &[u8] = if hop.sampled { b"1" } else { b"0" };
    match hop.b3 {
        None | Some(Format::W3c) => {}
        Some(Format::B3Single) => {
            let value = [trace_text, b"-", &span_hex, b"-", sampled].concat();
            insert(headers, &B3, &value);
        }
        Some(Format::B3Multi) => {
            insert(headers, &X_B3_TRACEID, trace_text);
            insert(headers, &X_B3_SPANID, &span_hex);
            if let Some(parent) = hop.parent {
                insert(headers, &X_B3_PARENTSPANID, &hex::<8, 16>(&parent.0));
            }
            insert(headers, &X_B3_SAMPLED, sampled);
        }
    }
}

/// `00-{trace id}-{span id}-{flags}`, flags `01` when sampled.
pub fn traceparent(hop: &Hop) -> HeaderValue {
    let mut text = [0u8; 55];
    text[..3].copy_from_slice(b"00-");
    text[3..35].copy_from_slice(&hex::<16, 32>(&hop.trace_id.0));
    text[35] = b'-';
    text[36..52].copy_from_slice(&hex::<8, 16>(&hop.span_id.0));
    text[52..55].copy_from_slice(if hop.sampled { b"-01" } else { b"-00" });
    header_value(&text)
}

fn insert(headers: &mut HeaderMap, name: &HeaderName, value: &[u8]) {
    headers.insert(name.clone(), header_value(value));
}

/// A trace header's value (hex digits are always a valid one), marked sensitive: a
/// value new on every request must not be indexed in HTTP/2's HPACK table, where it
/// would only push out the headers that do repeat.
fn header_value(text: &[u8]) -> HeaderValue {
    let mut value = HeaderValue::from_bytes(text).unwrap_or_else(|_| HeaderValue::from_static("0"));
    value.set_sensitive(true);
    value
}

/// `N` bytes as `H` (= 2N) lower-case hex digits.
pub fn hex<const N: usize, const H: usize>(bytes: &[u8; N]) -> [u8; H] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; H];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}

#[cfg(test)]
mod tests;
