//! Routing: a route table and a request built from the input, the proxy's `RouteTable` against a model of Gateway API matching.
//!
//! Strings are drawn mostly from small vocabularies (so that rules and
//! requests meet often) and sometimes raw. The generated routes are kept valid
//! by construction, then checked by `validate_snapshot` as the proxy would.
//! The model (`model`) states the rules of `policy/route.rs` and of the config's
//! `route/matches.rs` plainly: which virtual host a `Host` selects, what each
//! condition accepts, which matching rule wins by precedence, what prefix the
//! rewrite then replaces, and how weights pick a backend.
//!
//! This module draws the input and compares the two answers; `build` turns the
//! input into routes and a request.

use arbitrary::{Arbitrary, Unstructured};
use proxy_core::policy::route::{Found, Miss, RequestView, RouteTable, Rule};

mod build;
mod model;
use build::{build_request, build_vhosts, valid};
use model::{model, Want};

const HOSTS: &[&str] = &[
    "a.example",
    "b.example",
    "A.Example",
    "[::1]",
    "10.0.0.1",
    "*",
];
const SEGMENTS: &[&str] = &["", "a", "b", "api", "v1", ".", "..", "a.b", "%2F", "A"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "PURGE", "get"];
const HEADER_NAMES: &[&str] = &["x-a", "x-b", "X-A", "content-type"];
const VALUES: &[&str] = &["1", "yes", "", "a b", "YES", "a=b", "é"];
const PATTERNS: &[&str] = &[
    "/a/.*",
    "/[a-z]+",
    "/(a|b)/[0-9]+",
    ".*",
    "/api/v[0-9]+(/.*)?",
    "",
    "yes|no",
    "[0-9]+",
    "(?i)yes",
    ".+",
];
const REWRITES: &[&str] = &["", "/", "/x", "/x/", "/new/path"];

const MAX_VHOSTS: usize = 4;
const MAX_RULES: usize = 6;
const MAX_MATCHES: usize = 4;
const MAX_CONDITIONS: usize = 3;
const MAX_BACKENDS: usize = 3;
const MAX_REQUEST_HEADERS: usize = 6;

/// A string: one of a vocabulary, or any.
#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Raw(String),
}

impl Word {
    fn get(&self, vocabulary: &[&str]) -> String {
        match self {
            Self::Known(i) => vocabulary[usize::from(*i) % vocabulary.len()].to_string(),
            Self::Raw(raw) => raw.clone(),
        }
    }
}

/// A path: segments of the vocabulary after a `/`, or any string.
#[derive(Arbitrary, Debug)]
enum PathText {
    Segments(Vec<u8>),
    Raw(String),
}

impl PathText {
    fn get(&self) -> String {
        match self {
            Self::Segments(segments) => {
                let parts: Vec<&str> = segments
                    .iter()
                    .take(6)
                    .map(|i| SEGMENTS[usize::from(*i) % SEGMENTS.len()])
                    .collect();
                format!("/{}", parts.join("/"))
            }
            Self::Raw(raw) => raw.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PathSpec {
    Exact(PathText),
    Prefix(PathText),
    Regex(Word),
}

#[derive(Arbitrary, Debug)]
struct Condition {
    name: Word,
    value: Word,
    regex: bool,
}

#[derive(Arbitrary, Debug)]
struct MatchSpec {
    path: Option<PathSpec>,
    method: Option<Word>,
    headers: Vec<Condition>,
    query: Vec<Condition>,
}

#[derive(Arbitrary, Debug)]
struct RuleSpec {
    matches: Vec<MatchSpec>,
    /// One backend per weight (at least one).
    weights: Vec<u8>,
    /// A ReplacePrefixMatch rewrite, kept only when every match is a prefix.
    rewrite: Option<Word>,
}

#[derive(Arbitrary, Debug)]
struct VHostSpec {
    hosts: Vec<Word>,
    rules: Vec<RuleSpec>,
}

#[derive(Arbitrary, Debug)]
struct RequestSpec {
    host: Word,
    port: Option<u16>,
    method: Word,
    path: PathText,
    /// Pairs joined by `&`; a pair without a value has no `=`.
    query: Option<Vec<(Word, Option<Word>)>>,
    headers: Vec<(Word, Vec<u8>, bool)>,
    /// What the weighted pick draws.
    draw: u32,
}

/// The request first: the table takes the rest of the input, however long.
#[derive(Arbitrary, Debug)]
struct Input {
    request: RequestSpec,
    vhosts: Vec<VHostSpec>,
}

pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let vhosts = build_vhosts(&input.vhosts);
    if !valid(&vhosts) {
        return;
    }
    // A rule's backends are (rule, backend) by global rule index; a rule is known
    // by its request timeout, `rule + 1` ms: the model counts rules across hosts.
    let table: RouteTable<(usize, usize)> = RouteTable::compile(&vhosts, |name| {
        let (rule, backend) = name.strip_prefix('c')?.split_once('_')?;
        Some((rule.parse().ok()?, backend.parse().ok()?))
    });
    let request = build_request(&input.request);
    let view = request.view();
    let got = table.find_match(&view);
    check_trail(&table, &view, &got);
    let want = model(&vhosts, &view);
    match (got, want) {
        (Err(got), Err(want)) => assert_eq!(got, want, "{view:?}"),
        (Ok(found), Ok(want)) => {
            let rule = found
                .rule
                .timeout
                .map(|t| t.as_millis() as usize - 1)
                .unwrap_or(usize::MAX);
            assert_eq!(rule, want.rule, "wrong rule for {view:?}");
            assert_eq!(
                found.matched_prefix, want.prefix,
                "wrong matched prefix for {view:?}"
            );
            // The matched prefix is where the path's elements split.
            assert!(
                view.path.starts_with(found.matched_prefix)
                    && matches!(
                        view.path.as_bytes().get(found.matched_prefix.len()),
                        None | Some(b'/')
                    )
                    || found.matched_prefix.is_empty(),
                "{:?} does not prefix {:?}",
                found.matched_prefix,
                view.path
            );
            check_pick(
                found.rule,
                &want,
                input.request.draw,
                view.path,
                found.matched_prefix,
            );
        }
        (got, want) => panic!(
            "{view:?}: the table says {:?}, the model {:?}",
            got.map(|f| f.matched_prefix),
            want.map(|w| (w.rule, w.prefix))
        ),
    }
}

/// The trail of matches that `meshpy explain` shows ends at the match that routes the
/// request, every one before it failed; with no match, every one failed.
fn check_trail(
    table: &RouteTable<(usize, usize)>,
    view: &RequestView<'_>,
    got: &Result<Found<'_, (usize, usize)>, Miss>,
) {
    match (table.trail(view), got) {
        (Ok(trail), Ok(found)) => {
            let (last, before) = trail.tried.split_last().expect("a match was tried");
            assert_eq!((last.at, last.failed), (found.at, None), "{view:?}");
            assert!(before.iter().all(|t| t.failed.is_some()), "{view:?}");
        }
        (Ok(trail), Err(Miss::NoRule)) => {
            assert!(trail.tried.iter().all(|t| t.failed.is_some()), "{view:?}");
        }
        (Err(Miss::NoHost), Err(Miss::NoHost)) => {}
        (trail, got) => panic!(
            "{view:?}: the trail {trail:?} and the route {:?} disagree",
            got.as_ref().map(|found| found.at)
        ),
    }
}

/// Weights pick a backend of the rule whose share holds the draw; its
/// ReplacePrefixMatch then swaps the matched prefix for the replacement.
fn check_pick(
    rule: &Rule<(usize, usize)>,
    want: &Want,
    draw: u32,
    path: &str,
    matched_prefix: &str,
) {
    let total: u64 = want.weights.iter().map(|&w| u64::from(w)).sum();
    let mut ticket = None;
    let picked = rule.pick_backend(|n| {
        assert_eq!(n as u64, total, "the pick draws below the total weight");
        let t = draw as usize % n;
        ticket = Some(t);
        t
    });
    let Some(backend) = picked else {
        assert_eq!(
            total, 0,
            "no backend picked from weights {:?}",
            want.weights
        );
        return;
    };
    let (rule, index) = backend.target;
    assert_eq!(rule, want.rule, "a backend of another rule");
    let weight = want.weights[index];
    assert!(weight > 0, "picked backend {index} of weight 0");
    if let Some(ticket) = ticket {
        let start: u64 = want.weights[..index].iter().map(|&w| u64::from(w)).sum();
        let ticket = ticket as u64;
        assert!(
            start <= ticket && ticket < start + u64::from(weight),
            "draw {ticket} picked backend {index} of weights {:?}",
            want.weights
        );
    }
    let edit = backend.filters.as_ref().and_then(|f| f.path.as_ref());
    assert_eq!(
        edit.is_some(),
        want.rewrite.is_some(),
        "rewrite lost or made up"
    );
    let (Some(edit), Some(replacement)) = (edit, &want.rewrite) else {
        return;
    };
    let out = edit.apply(path, matched_prefix);
    let replacement = replacement.trim_end_matches('/');
    let mut expected = format!("{replacement}{}", &path[matched_prefix.len()..]);
    if expected.is_empty() {
        expected.push('/');
    }
    assert_eq!(
        out, expected,
        "{path:?} with prefix {matched_prefix:?} rewritten by {replacement:?}"
    );
    if path.starts_with('/') {
        assert!(out.starts_with('/'), "{path:?} rewritten to {out:?}");
    }
}
