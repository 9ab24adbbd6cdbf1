//! Proxy header semantics as pure functions: hop-by-hop removal, forwarding headers, request targets.
//!
//! Nothing here touches a socket, so every rule is tested with plain header maps.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, Version};
use http_body::Body;

use crate::config::{ProxyHeader, UpstreamProtocol};

/// `x-forwarded-for`, appended with the client's address.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-request-id`, set when absent so a request can be followed through logs.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-meshpy-error`, on responses the proxy made itself, saying why.
pub static X_MESHPY_ERROR: HeaderName = HeaderName::from_static("x-meshpy-error");
/// Names the circuit breaker limit a request ran into (with `x-meshpy-error: overflow`).
pub static X_MESHPY_OVERFLOW: HeaderName = HeaderName::from_static("x-meshpy-overflow");
/// `x-meshpy-client-id`, the SPIFFE ID of an mTLS client; never taken from a client.
pub static X_MESHPY_CLIENT_ID: HeaderName = HeaderName::from_static("x-meshpy-client-id");

static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 meshpy");

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
fn fixed_hop_by_hop() -> [&'static HeaderName; 6] {
    [
        &header::CONNECTION,
        &PROXY_CONNECTION,
        &KEEP_ALIVE,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHENTICATE,
    ]
}

/// Values of a connection computed once per downstream connection, reused per request.
#[derive(Debug, Clone)]
pub struct ClientHeaders {
    /// The client's IP, for balancers that hash on it.
    pub ip: IpAddr,
    /// The client's IP as an `x-forwarded-for` element.
    pub forwarded_for: HeaderValue,
    /// `for=...;proto=http` (or `https`) for the `forwarded` header.
    pub forwarded: HeaderValue,
    /// The verified SPIFFE ID of an mTLS client, for `x-meshpy-client-id`.
    pub client_id: Option<HeaderValue>,
}

impl ClientHeaders {
    /// Header values describing a plaintext client at `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Self::build(ip, "http", None)
    }

    /// Header values describing an mTLS client at `ip` whose certificate names `client_id`.
    pub fn mtls(ip: IpAddr, client_id: &str) -> Self {
        Self::build(ip, "https", HeaderValue::from_str(client_id).ok())
    }

    fn build(ip: IpAddr, proto: &str, client_id: Option<HeaderValue>) -> Self {
        let forwarded = match ip {
            IpAddr::V4(v4) => format!("for={v4};proto={proto}"),
            // RFC 7239: IPv6 addresses are bracketed and quoted.
            IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto={proto}"),
        };
        Self {
            ip,
            forwarded_for: header_value(ip.to_string()),
            forwarded: header_value(forwarded),
            client_id,
        }
    }
}

fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
///
/// `te: trailers` is kept: it is end to end in HTTP/2 and gRPC needs it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| name != header::HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in fixed_hop_by_hop() {
        headers.remove(name);
    }
    let te_trailers_only = headers
        .get_all(header::TE)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers_only {
        headers.remove(header::TE);
    }
}

/// Rewrites a downstream request into the one sent upstream: hop-by-hop headers
/// out, forwarding headers in, request target and version for `upstream`.
/// `x-meshpy-client-id` is always replaced: set from a verified mTLS client
/// certificate, removed otherwise, so no client can claim an identity.
pub fn prepare_request<B>(
    req: &mut Request<B>,
    client: &ClientHeaders,
    mode: ProxyHeader,
    upstream: UpstreamProtocol,
    request_id: impl FnOnce() -> HeaderValue,
) {
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    headers.remove(&X_MESHPY_CLIENT_ID);
    if let Some(client_id) = &client.client_id {
        headers.insert(X_MESHPY_CLIENT_ID.clone(), client_id.clone());
    }
    append_forwarded_for(headers, &client.forwarded_for);
    if !headers.contains_key(&X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID.clone(), request_id());
    }
    match mode {
        ProxyHeader::Via => {
            headers.append(header::VIA, VIA_VALUE.clone());
        }
        ProxyHeader::Forwarded => {
            headers.append(header::FORWARDED, client.forwarded.clone());
        }
        ProxyHeader::None => {}
    }
    set_target(req, upstream);
}

/// Checks the target and `Host` of an HTTP/1 request (RFC 9112 §3.2) before it is
/// routed, and makes them agree: an absolute-form target's authority replaces
/// whatever `Host` said, as a proxy must. A request that fails gets 400 with the
/// reason returned. HTTP/2 requests carry `:authority` instead, and are left alone.
pub fn check_http1_target<B>(req: &mut Request<B>) -> Result<(), &'static str> {
    if req.version() != Version::HTTP_11 && req.version() != Version::HTTP_10 {
        return Ok(());
    }
    let uri = req.uri();
    let asterisk = uri.path() == "*" && uri.authority().is_none();
    let origin = uri.scheme().is_none() && uri.authority().is_none();
    let absolute = uri.scheme().is_some();
    match *req.method() {
        Method::CONNECT => return Err("CONNECT is not supported"),
        Method::OPTIONS if asterisk => {}
        _ if asterisk => return Err("only OPTIONS may have the target *"),
        _ if !(origin || absolute) => return Err("the request target must be a path or a URL"),
        _ => {}
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if let Some(host) = host {
        if !is_valid_host(host.as_bytes()) {
            return Err("invalid Host header");
        }
    }
    if absolute {
        let Some(authority) = req.uri().authority() else {
            return Err("the request target has no host");
        };
        if !is_valid_host(authority.as_str().as_bytes()) {
            return Err("invalid host in the request target");
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "invalid host")?;
        req.headers_mut().insert(header::HOST, host);
    } else if host.is_none() {
        return Err("missing Host header");
    }
    Ok(())
}

/// Whether `value` is a `Host` field value: `uri-host [ ":" port ]` with no userinfo
/// (RFC 9110 §7.2); the host a bracketed IPv6 literal, or letters, digits and `-._~`
/// with `!$&'()*+,;=` and percent escapes (a reg-name, RFC 3986 §3.2.2).
pub fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                let literal_ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || b":.".contains(b));
                if !literal_ok {
                    return false;
                }
                match &value[end + 1..] {
                    [] => (&value[..=end], None),
                    [b':', port @ ..] => (&value[..=end], Some(port)),
                    _ => return false,
                }
            }
            None => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        },
    };
    let reg_name_ok = host.first() == Some(&b'[')
        || (!host.is_empty()
            && host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(b)));
    let port_ok = port.is_none_or(|port| {
        port.len() <= 5 && port.iter().all(u8::is_ascii_digit) && {
            let n = port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            n <= 65_535
        }
    });
    reg_name_ok && port_ok
}

/// Whether a request sent on HTTP/1 needs `Transfer-Encoding: chunked` set by the proxy:
/// a GET or HEAD whose body has no known length. hyper frames any other method's body
/// of unknown length as chunked, but sends GET and HEAD with none, which would drop a
/// body the client sent (chunked on HTTP/1, or DATA without `content-length` on HTTP/2).
/// The rule is to forward such a body re-framed, on every hop.
pub fn needs_chunked_framing(method: &Method, body_is_empty: bool, exact_len: Option<u64>) -> bool {
    (method == Method::GET || method == Method::HEAD) && !body_is_empty && exact_len.is_none()
}

/// Sets `Transfer-Encoding: chunked` on a request for an HTTP/1 upstream when
/// [`needs_chunked_framing`] says so.
pub fn frame_h1_body<B: Body>(req: &mut Request<B>) {
    let body = req.body();
    if needs_chunked_framing(req.method(), body.is_end_stream(), body.size_hint().exact()) {
        req.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// `x-forwarded-for` keeps one comma-separated list: earlier hops first, this client last.
fn append_forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    match headers.get(&X_FORWARDED_FOR) {
        None => {
            headers.insert(X_FORWARDED_FOR.clone(), client.clone());
        }
        Some(existing) => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + client.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&joined) {
                headers.insert(X_FORWARDED_FOR.clone(), value);
            }
        }
    }
}

/// HTTP/1 upstreams get origin-form targets and a `Host` header; HTTP/2
/// upstreams get absolute targets whose authority becomes `:authority`.
pub fn set_target<B>(req: &mut Request<B>, upstream: UpstreamProtocol) {
    let authority = request_authority(req);
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match upstream {
        UpstreamProtocol::Http1 => {
            *req.version_mut() = Version::HTTP_11;
            if !req.headers().contains_key(header::HOST) {
                if let Some(authority) = &authority {
                    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                        req.headers_mut().insert(header::HOST, host);
                    }
                }
            }
            if req.uri().scheme().is_some() || req.uri().authority().is_some() {
                *req.uri_mut() = Uri::from(path);
            }
        }
        UpstreamProtocol::Http2 => {
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = authority.or_else(|| Some(Authority::from_static("unknown")));
            parts.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

/// Marks an HTTP/2 request target as `https`, for an upstream reached over mTLS.
pub fn use_https<B>(req: &mut Request<B>) {
    if req.uri().scheme().is_none() {
        return;
    }
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTPS);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// The authority the client addressed: the `Host` header, else the URI's.
fn request_authority<B>(req: &Request<B>) -> Option<Authority> {
    req.headers()
        .get(header::HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .or_else(|| req.uri().authority().cloned())
}

/// Rewrites an upstream response for downstream: hop-by-hop headers out, `via` in.
pub fn prepare_response(headers: &mut HeaderMap, mode: ProxyHeader) {
    strip_hop_by_hop(headers);
    if mode == ProxyHeader::Via {
        headers.append(header::VIA, VIA_VALUE.clone());
    }
}

/// A random 128-bit request id as 32 lowercase hex digits.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    let words = [crate::rng::next_u64(), crate::rng::next_u64()];
    for (i, byte) in out.iter_mut().enumerate() {
        let word = words[i / 16];
        let nibble = (word >> ((i % 16) * 4)) & 0xf;
        *byte = HEX[nibble as usize];
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests;
