//! Live taps: a sample of the requests a proxy serves, sent as they end to the operators who asked (`GET /tap` on the admin listener).
//!
//! A [`TapHub`] is shared by every listener. With nobody tapping, a request costs
//! one relaxed atomic load ([`TapHub::arrival`]) and nothing is allocated. Each tap
//! ([`Tap`]) has a filter (path prefix, method, direction), a rate (token bucket)
//! and a bounded queue that the request path only `try_send`s to: a slow reader
//! loses events (counted), never slows a request. At most [`MAX_TAPS`] at once.
//!
//! Request headers are kept only for a tap that asks, with the values of credentials
//! (see [`is_sensitive`]) replaced by `[redacted]`. Bodies are shown only to a tap
//! that asks (`bodies`): the first [`MAX_BODY_BYTES`] of the request's and of the
//! response's, copied as they pass. Such a request's event waits for its response
//! body to end ([`PendingTap`]); any other is offered when its response starts.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{HeaderMap, Method, Request};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::policy::route::MatchedAt;
use crate::spiffe::SpiffeId;
use crate::telemetry::trace::context::{self, TraceId};

/// Taps open at once on one proxy.
pub const MAX_TAPS: usize = 8;
/// Events queued per tap for its reader; beyond, events are dropped (and counted).
pub const QUEUE: usize = 128;
/// The highest rate a tap may ask for, in events per second.
pub const MAX_RPS: u32 = 1000;
/// The rate of a tap that does not say.
pub const DEFAULT_RPS: u32 = 10;
/// The longest a tap may last.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// How long a tap lasts if it does not say.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);
/// Header bytes (names and values) an event keeps; the rest is cut, and said so.
pub const MAX_HEADER_BYTES: usize = 4096;
/// What a sensitive header's value shows as.
pub const REDACTED: &str = "[redacted]";
/// Bytes of a request's body, and of its response's, that a tap asking for bodies sees.
pub const MAX_BODY_BYTES: usize = 4096;
/// Requests whose bodies are being copied at once, per proxy (at most 2 MiB of copies);
/// more are shown without their bodies.
pub const MAX_BODY_COPIES: usize = 256;

/// Headers whose value is never shown, whatever their name says otherwise.
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-amz-security-token",
    "x-client-cert",
    "x-forwarded-client-cert",
];

/// Parts of a header name that mark a credential: `x-auth-token`, `x-apikey`,
/// `x-session-id`, `x-db-password`, `x-hub-signature`...
const SENSITIVE_PARTS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "passw",
    "apikey",
    "api-key",
    "api_key",
    "session",
    "cookie",
    "credential",
    "signature",
    "private",
];

/// Whether a header's value must never be shown in a tap (`name` in lower case, as
/// `http` keeps names).
pub fn is_sensitive(name: &str) -> bool {
    SENSITIVE.contains(&name) || SENSITIVE_PARTS.iter().any(|part| name.contains(part))
}

/// Request headers as a tap shows them: sensitive values redacted, values that are not
/// UTF-8 shown lossily, and at most [`MAX_HEADER_BYTES`] of names and values (a last
/// `…` entry says when some were left out).
pub fn shown_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut shown = Vec::with_capacity(headers.len().min(32));
    let mut budget = MAX_HEADER_BYTES;
    for (name, value) in headers {
        let name = name.as_str();
        let value = if is_sensitive(name) {
            REDACTED.into()
        } else {
            String::from_utf8_lossy(value.as_bytes())
        };
        let cost = name.len() + value.len();
        if cost > budget {
            shown.push(("…".to_string(), "more headers left out".to_string()));
            break;
        }
        budget -= cost;
        shown.push((name.to_string(), value.into_owned()));
    }
    shown
}

/// The first [`MAX_BODY_BYTES`] of a body, copied as it passes, and its length so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyCopy {
    kept: Vec<u8>,
    seen: u64,
}

impl BodyCopy {
    /// Copies what of `data` fits, and counts all of it.
    pub fn keep(&mut self, data: &[u8]) {
        let room = MAX_BODY_BYTES.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
        self.seen = self.seen.saturating_add(data.len() as u64);
    }

    /// As an event shows it: the bytes kept as text (invalid UTF-8 replaced), the body's
    /// length so far, and whether the text is cut short.
    pub fn to_json(&self) -> Value {
        json!({
            "text": String::from_utf8_lossy(&self.kept),
            "bytes": self.seen,
            "truncated": self.seen > self.kept.len() as u64,
        })
    }
}

/// A request body's copy, filled by the client body as it is read.
pub type SharedBodyCopy = Arc<Mutex<BodyCopy>>;

/// One of the [`MAX_BODY_COPIES`]: a request's body copy, given back when dropped.
#[derive(Debug)]
struct BodySlot {
    copy: SharedBodyCopy,
    taken: Arc<AtomicUsize>,
}

impl BodySlot {
    /// A slot of `taken`, unless all are taken.
    fn take(taken: &Arc<AtomicUsize>) -> Option<Self> {
        taken
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_BODY_COPIES).then_some(n + 1)
            })
            .ok()?;
        Some(Self {
            copy: SharedBodyCopy::default(),
            taken: Arc::clone(taken),
        })
    }
}

impl Drop for BodySlot {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which way a request goes through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into the workload (an inbound listener).
    Inbound,
    /// Out of the workload (an outbound listener).
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Which requests a tap sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapFilter {
    /// Paths under this prefix, segment by segment (`/api` takes `/api` and `/api/x`,
    /// not `/apix`; a prefix ending in `/` takes what starts with it).
    pub path_prefix: Option<String>,
    /// Only this method.
    pub method: Option<Method>,
    /// Only this direction.
    pub direction: Option<Direction>,
}

impl TapFilter {
    /// Whether a request of `method` on `path` going `direction` is one the tap sees.
    pub fn matches(&self, method: &Method, path: &str, direction: Direction) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self.direction.is_none_or(|d| d == direction)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| under_prefix(path, prefix))
    }
}

fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// At most `rate` events a second on average, and `rate` (at least one) at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            burst: rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a tap asks for: its filter, rate, whether it shows request headers, how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSpec {
    /// Which requests.
    pub filter: TapFilter,
    /// Events a second, at most.
    pub max_rps: u32,
    /// Show request headers (redacted).
    pub headers: bool,
    /// Show the first [`MAX_BODY_BYTES`] of request and response bodies.
    pub bodies: bool,
    /// When the tap ends.
    pub duration: Duration,
}

impl Default for TapSpec {
    fn default() -> Self {
        Self {
            filter: TapFilter::default(),
            max_rps: DEFAULT_RPS,
            headers: false,
            bodies: false,
            duration: DEFAULT_DURATION,
        }
    }
}

impl TapSpec {
    /// A tap from a query string: `path` (a prefix starting with `/`), `method`,
    /// `direction` (`inbound`, `outbound`), `max_rps` (1 to [`MAX_RPS`]), `headers`
    /// and `bodies` (`1`, `true`, `0`, `false`), `duration` (seconds, 1 to 600). The
    /// error says which parameter is wrong and why.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut spec = Self::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                percent_decode(raw).ok_or_else(|| format!("{key}: not a valid query value"))?;
            match key {
                "path" => {
                    if !value.starts_with('/') {
                        return Err(format!("path: {value:?} does not start with '/'"));
                    }
                    spec.filter.path_prefix = Some(value);
                }
                "method" => {
                    let valid = !value.is_empty()
                        && value.len() <= 32
                        && value.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
                    let method = Method::from_bytes(value.as_bytes()).ok().filter(|_| valid);
                    spec.filter.method =
                        Some(method.ok_or_else(|| {
                            format!("method: {value:?} is not an upper-case method")
                        })?);
                }
                "direction" => {
                    spec.filter.direction = match value.as_str() {
                        "inbound" => Some(Direction::Inbound),
                        "outbound" => Some(Direction::Outbound),
                        "" | "both" => None,
                        _ => {
                            return Err(format!(
                                "direction: {value:?} is not inbound, outbound or both"
                            ))
                        }
                    };
                }
                "max_rps" => {
                    spec.max_rps = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_RPS).contains(n))
                        .ok_or_else(|| format!("max_rps: {value:?} is not 1 to {MAX_RPS}"))?;
                }
                "headers" => spec.headers = flag(key, &value)?,
                "bodies" => spec.bodies = flag(key, &value)?,
                "duration" => {
                    let max = MAX_DURATION.as_secs();
                    let seconds = value
                        .strip_suffix('s')
                        .unwrap_or(&value)
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| format!("duration: {value:?} is not 1 to {max} seconds"))?;
                    spec.duration = Duration::from_secs(seconds);
                }
                _ => return Err(format!("{key}: not a parameter of /tap")),
            }
        }
        Ok(spec)
    }
}

/// A yes/no query value: `1`, `true`, `0` or `false`.
fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("{key}: {value:?} is not 1, true, 0 or false")),
    }
}

/// A query value with `%XX` escapes and `+` decoded; `None` if an escape is cut short
/// or the result is not UTF-8.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One request as a tap shows it, made when its response starts.
#[derive(Debug, Clone)]
pub struct TapEvent {
    /// When the request arrived.
    pub at: SystemTime,
    /// Its listener.
    pub listener: Arc<str>,
    /// In or out of the workload.
    pub direction: Direction,
    /// The method.
    pub method: Method,
    /// `Host` or the URI's authority.
    pub authority: Option<String>,
    /// The path as it came, without the query.
    pub path: String,
    /// The response's status.
    pub status: u16,
    /// From arrival to the response's head.
    pub latency: Duration,
    /// The client's verified SPIFFE ID (inbound), or the proxy's own (outbound).
    pub source_identity: Option<SpiffeId>,
    /// The client's address.
    pub client: IpAddr,
    /// The route rule that matched, on a listener with routes.
    pub route: Option<MatchedAt>,
    /// The cluster it was sent to.
    pub cluster: Option<Arc<str>>,
    /// The endpoint that answered.
    pub endpoint: Option<SocketAddr>,
    /// Its trace, if it carries or got one.
    pub trace_id: Option<TraceId>,
    /// Why the proxy failed it (`x-meshpy-error`), if it did.
    pub error: Option<&'static str>,
    /// Request headers, redacted, for a tap that asks.
    pub headers: Option<Arc<[(String, String)]>>,
    /// The start of the request's and of the response's bodies, for a tap that asks.
    pub bodies: Option<Arc<(BodyCopy, BodyCopy)>>,
}

impl TapEvent {
    /// The event as one JSON object (one NDJSON line of `GET /tap`).
    pub fn to_json(&self) -> Value {
        let at = self
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut event = json!({
            "type": "request",
            "time": at,
            "listener": &*self.listener,
            "direction": self.direction.as_str(),
            "method": self.method.as_str(),
            "authority": self.authority,
            "path": self.path,
            "status": self.status,
            "latency_ms": self.latency.as_secs_f64() * 1000.0,
            "source_identity": self.source_identity.as_ref().map(SpiffeId::as_str),
            "client": self.client.to_string(),
            "route": self.route.map(|at| json!({
                "vhost": at.vhost, "rule": at.rule, "match": at.matched,
            })),
            "cluster": self.cluster.as_deref(),
            "endpoint": self.endpoint.map(|e| e.to_string()),
            "trace_id": self.trace_id.map(|id| {
                String::from_utf8_lossy(&context::hex::<16, 32>(&id.0)).into_owned()
            }),
            "error": self.error,
        });
        if let (Some(headers), Some(object)) = (&self.headers, event.as_object_mut()) {
            let list: Vec<Value> = headers.iter().map(|(n, v)| json!([n, v])).collect();
            object.insert("headers".into(), Value::Array(list));
        }
        if let (Some(bodies), Some(object)) = (&self.bodies, event.as_object_mut()) {
            object.insert("request_body".into(), bodies.0.to_json());
            object.insert("response_body".into(), bodies.1.to_json());
        }
        event
    }
}

/// What a request's tap event is made of, kept from its arrival while some tap is open
/// and filled in on the way (route, cluster, endpoint, trace).
#[derive(Debug)]
pub struct Tapping {
    started: Instant,
    at: SystemTime,
    direction: Direction,
    method: Method,
    authority: Option<String>,
    path: String,
    headers: Option<Arc<[(String, String)]>>,
    /// The request body's copy, for a tap that asks for bodies.
    request_body: Option<BodySlot>,
    /// The route rule that matched.
    pub route: Option<MatchedAt>,
    /// The cluster planned.
    pub cluster: Option<Arc<str>>,
    /// The endpoint that answered.
    pub endpoint: Option<SocketAddr>,
    /// The trace id: the incoming `traceparent`'s, or this hop's when tracing.
    pub trace_id: Option<TraceId>,
}

/// How a tapped request ended.
#[derive(Debug)]
pub struct Ended {
    /// Its listener.
    pub listener: Arc<str>,
    /// The response's status.
    pub status: u16,
    /// Why the proxy failed it, if it did.
    pub error: Option<&'static str>,
    /// Who sent it (see [`TapEvent::source_identity`]).
    pub source_identity: Option<SpiffeId>,
    /// The client's address.
    pub client: IpAddr,
    /// When its response started.
    pub responded: Instant,
}

impl Tapping {
    /// Where the request body is to be copied as it is read, if a tap wants bodies.
    pub fn request_body(&self) -> Option<SharedBodyCopy> {
        self.request_body
            .as_ref()
            .map(|slot| Arc::clone(&slot.copy))
    }
}

/// A tapped request whose event waits for the end of its response body, because a
/// tap asked for bodies: the event is offered when this is dropped (the body ended,
/// or was abandoned).
#[derive(Debug)]
pub struct PendingTap {
    hub: Arc<TapHub>,
    request: Option<(Box<Tapping>, Ended)>,
    response_body: BodyCopy,
}

impl PendingTap {
    /// Copies what fits of a response body's `data`.
    pub fn keep(&mut self, data: &[u8]) {
        self.response_body.keep(data);
    }
}

impl Drop for PendingTap {
    fn drop(&mut self) {
        if let Some((tapping, ended)) = self.request.take() {
            let response_body = std::mem::take(&mut self.response_body);
            self.hub.deliver(tapping, ended, Some(response_body));
        }
    }
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    filter: TapFilter,
    headers: bool,
    bodies: bool,
    /// The tap's rate; None for the access log, which takes every request.
    bucket: Option<Mutex<TokenBucket>>,
    queue: mpsc::Sender<TapEvent>,
    /// Events the reader was too slow for.
    dropped: AtomicU64,
    /// Events over the tap's rate.
    limited: AtomicU64,
}

impl Subscriber {
    fn offer(&self, event: &TapEvent, now: Instant) {
        let allowed = self.bucket.as_ref().is_none_or(|bucket| {
            bucket
                .lock()
                .map(|mut bucket| bucket.take(now))
                .unwrap_or(false)
        });
        if !allowed {
            self.limited.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut event = event.clone();
        if !self.headers {
            event.headers = None;
        }
        if !self.bodies {
            event.bodies = None;
        }
        if self.queue.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a tap shows beyond the request line.
#[derive(Debug, Clone, Copy, Default)]
struct Shown {
    headers: bool,
    bodies: bool,
}

/// The taps open on one proxy.
#[derive(Debug, Default)]
pub struct TapHub {
    /// Taps open: what every request reads, once.
    active: AtomicUsize,
    taps: ArcSwap<Vec<Arc<Subscriber>>>,
    /// Serialises opening and closing taps.
    edit: Mutex<()>,
    next_id: AtomicU64,
    /// Body copies being made (see [`MAX_BODY_COPIES`]).
    body_copies: Arc<AtomicUsize>,
}

/// Why a tap cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTaps;

impl TapHub {
    /// Whether any tap is open.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    /// What a tap will need of `req` as it arrives, if a tap is open that could want it;
    /// with none open, one relaxed load.
    #[inline]
    pub fn arrival<B>(&self, req: &Request<B>, direction: Direction) -> Option<Box<Tapping>> {
        if !self.is_active() {
            return None;
        }
        self.arrival_tapped(req, direction)
    }

    #[cold]
    #[inline(never)]
    fn arrival_tapped<B>(&self, req: &Request<B>, direction: Direction) -> Option<Box<Tapping>> {
        let path = req.uri().path();
        let taps = self.taps.load();
        let mut wanted = false;
        let mut headers = false;
        let mut bodies = false;
        for tap in taps.iter() {
            if tap.filter.matches(req.method(), path, direction) {
                wanted = true;
                headers |= tap.headers;
                bodies |= tap.bodies;
            }
        }
        if !wanted {
            return None;
        }
        let authority = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map(str::to_string);
        let trace_id = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(context::parse_traceparent)
            .map(|parent| parent.trace_id);
        Some(Box::new(Tapping {
            started: Instant::now(),
            at: SystemTime::now(),
            direction,
            method: req.method().clone(),
            authority,
            path: path.to_string(),
            headers: headers.then(|| shown_headers(req.headers()).into()),
            request_body: bodies.then(|| BodySlot::take(&self.body_copies)).flatten(),
            route: None,
            cluster: None,
            endpoint: None,
            trace_id,
        }))
    }

    /// Sends a tapped request's event to each open tap that wants it, within its rate;
    /// never waits. If a tap wants its bodies, the event waits for the response body:
    /// the [`PendingTap`] returned is to be fed the body, then dropped.
    pub fn offer(self: &Arc<Self>, tapping: Box<Tapping>, ended: Ended) -> Option<PendingTap> {
        if tapping.request_body.is_some() {
            return Some(PendingTap {
                hub: Arc::clone(self),
                request: Some((tapping, ended)),
                response_body: BodyCopy::default(),
            });
        }
        self.deliver(tapping, ended, None);
        None
    }

    fn deliver(&self, tapping: Box<Tapping>, ended: Ended, response_body: Option<BodyCopy>) {
        let now = Instant::now();
        let Tapping {
            started,
            at,
            direction,
            method,
            authority,
            path,
            headers,
            request_body,
            route,
            cluster,
            endpoint,
            trace_id,
        } = *tapping;
        let bodies = request_body.zip(response_body).map(|(slot, response)| {
            let request = std::mem::take(&mut *slot.copy.lock().unwrap_or_else(|e| e.into_inner()));
            Arc::new((request, response))
        });
        let event = TapEvent {
            at,
            listener: ended.listener,
            direction,
            method,
            authority,
            path,
            status: ended.status,
            latency: ended.responded.saturating_duration_since(started),
            source_identity: ended.source_identity,
            client: ended.client,
            route,
            cluster,
            endpoint,
            trace_id,
            error: ended.error,
            headers,
            bodies,
        };
        for tap in self.taps.load().iter() {
            if tap.filter.matches(&event.method, &event.path, direction) {
                tap.offer(&event, now);
            }
        }
    }

    /// Opens a tap, unless [`MAX_TAPS`] are open; it closes when dropped.
    pub fn open(self: &Arc<Self>, spec: &TapSpec) -> Result<Tap, TooManyTaps> {
        let bucket = TokenBucket::new(spec.max_rps, Instant::now());
        let shown = Shown {
            headers: spec.headers,
            bodies: spec.bodies,
        };
        self.subscribe(&spec.filter, shown, Some(bucket), QUEUE)
    }

    /// Opens the access log's tap: every request, no headers, no rate, a queue of
    /// `queue` events; not one of the [`MAX_TAPS`], so never refused.
    pub fn open_log(self: &Arc<Self>, queue: usize) -> Result<Tap, TooManyTaps> {
        self.subscribe(&TapFilter::default(), Shown::default(), None, queue)
    }

    fn subscribe(
        self: &Arc<Self>,
        filter: &TapFilter,
        shown: Shown,
        bucket: Option<TokenBucket>,
        queue: usize,
    ) -> Result<Tap, TooManyTaps> {
        let (queue, events) = mpsc::channel(queue.max(1));
        let limited = bucket.is_some();
        let subscriber = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            filter: filter.clone(),
            headers: shown.headers,
            bodies: shown.bodies,
            bucket: bucket.map(Mutex::new),
            queue,
            dropped: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        });
        {
            let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
            let taps = self.taps.load();
            let rated = taps.iter().filter(|tap| tap.bucket.is_some()).count();
            if limited && rated >= MAX_TAPS {
                return Err(TooManyTaps);
            }
            let mut next = Vec::with_capacity(taps.len() + 1);
            next.extend(taps.iter().cloned());
            next.push(Arc::clone(&subscriber));
            self.active.store(next.len(), Ordering::Relaxed);
            self.taps.store(Arc::new(next));
        }
        Ok(Tap {
            hub: Arc::clone(self),
            subscriber,
            events,
        })
    }

    fn close(&self, id: u64) {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let next: Vec<Arc<Subscriber>> = self
            .taps
            .load()
            .iter()
            .filter(|tap| tap.id != id)
            .cloned()
            .collect();
        self.active.store(next.len(), Ordering::Relaxed);
        self.taps.store(Arc::new(next));
    }

    /// Taps open now.
    #[cfg(test)]
    pub fn open_taps(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// An open tap: its events, until dropped.
#[derive(Debug)]
pub struct Tap {
    hub: Arc<TapHub>,
    subscriber: Arc<Subscriber>,
    events: mpsc::Receiver<TapEvent>,
}

impl Tap {
    /// The next event, when one comes.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<TapEvent>> {
        self.events.poll_recv(cx)
    }

    /// An event already queued, if any.
    pub fn try_event(&mut self) -> Option<TapEvent> {
        self.events.try_recv().ok()
    }

    /// Events lost so far: over the tap's rate, and for a full queue.
    pub fn lost(&self) -> (u64, u64) {
        (
            self.subscriber.limited.load(Ordering::Relaxed),
            self.subscriber.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.hub.close(self.subscriber.id);
    }
}

#[cfg(test)]
mod tests;
