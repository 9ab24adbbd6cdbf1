"""HTTPRoute (gateway.networking.k8s.io/v1), GAMMA style: routes attach to Services.

The models follow the Gateway API v1 types field for field, with its defaults (a rule
without matches matches every path; a match without a path is ``PathPrefix /``; a
backend's weight is 1) and its validation rules (at most 16 rules, 64 matches per rule and
128 in all, 16 backendRefs, 16 filters, header names as RFC 7230 tokens, paths that start
with "/" and hold no "//", "/./" or "%2F", ...). Fields that meshpy does not implement,
such as ``sessionPersistence`` or the RequestRedirect filter, are refused by name.

As GAMMA asks, ``hostnames`` is validated and kept but carries no meaning: a route
applies to the Services in its ``parentRefs``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from meshpy._core import regex_problem
from meshpy.resources._common import (
    BackendObjectReference,
    Duration,
    HeaderName,
    HeaderValue,
    Hostname,
    HTTPMethod,
    ParentReference,
    PreciseHostname,
    SectionName,
    SpecModel,
    field_error,
)

__all__ = [
    "Fraction",
    "HTTPBackendRef",
    "HTTPHeader",
    "HTTPHeaderFilter",
    "HTTPHeaderMatch",
    "HTTPPathMatch",
    "HTTPPathModifier",
    "HTTPQueryParamMatch",
    "HTTPRequestMirrorFilter",
    "HTTPRouteFilter",
    "HTTPRouteMatch",
    "HTTPRouteRetry",
    "HTTPRouteRule",
    "HTTPRouteSpec",
    "HTTPRouteTimeouts",
    "HTTPURLRewriteFilter",
    "refused_regular_expressions",
]

_PATH_CHARS = re.compile(r"(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+")
_PATH_FORBIDDEN = ("//", "/./", "/../", "%2f", "%2F", "#")


def _regex_problem(value: str) -> str | None:
    # The data plane's own rules (Rust regex syntax, size limits), so that an accepted
    # route never makes a sidecar refuse its snapshot.
    return regex_problem(value)


# --- Matches ------------------------------------------------------------------------------


class HTTPPathMatch(SpecModel):
    """How the request path is matched; the default matches every path."""

    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: Annotated[str, Field(max_length=1024)] = "/"

    @model_validator(mode="after")
    def _check_value(self) -> Self:
        value = self.value
        if self.type == "RegularExpression":
            problem = _regex_problem(value)
            if problem:
                raise field_error("value", problem)
            return self
        if not value.startswith("/"):
            raise field_error("value", f"must be an absolute path starting with '/', not {value!r}")
        for bad in _PATH_FORBIDDEN:
            if bad in value:
                raise field_error("value", f"must not contain {bad!r}")
        if value.endswith(("/..", "/.")):
            raise field_error("value", "must not end with '/.' or '/..'")
        if not _PATH_CHARS.fullmatch(value):
            raise field_error("value", f"{value!r} holds characters a path cannot (use %XX)")
        return self


class HTTPHeaderMatch(SpecModel):
    """A request header that must be present with a value (names are case-insensitive)."""

    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: HeaderValue

    @model_validator(mode="after")
    def _check_regex(self) -> Self:
        problem = _regex_problem(self.value) if self.type == "RegularExpression" else None
        if problem:
            raise field_error("value", problem)
        return self


class HTTPQueryParamMatch(SpecModel):
    """A query parameter that must be present with a value (names are exact)."""

    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=1024)]

    @model_validator(mode="after")
    def _check_regex(self) -> Self:
        problem = _regex_problem(self.value) if self.type == "RegularExpression" else None
        if problem:
            raise field_error("value", problem)
        return self


def _unique_names(field: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise field_error(f"{field}[{i}].name", f"{name!r} is listed twice")
        seen.add(name)


class HTTPRouteMatch(SpecModel):
    """Conditions that must all hold (AND); a rule's matches are alternatives (OR)."""

    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: Annotated[list[HTTPHeaderMatch], Field(max_length=16)] = Field(default_factory=list)
    query_params: Annotated[list[HTTPQueryParamMatch], Field(max_length=16)] = Field(
        default_factory=list
    )
    method: HTTPMethod | None = None

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        _unique_names("headers", [h.name for h in self.headers])
        _unique_names("queryParams", [q.name for q in self.query_params])
        return self


# --- Filters ------------------------------------------------------------------------------


class HTTPHeader(SpecModel):
    """A header name and value to set or add (printable ASCII, as the data plane sends)."""

    name: HeaderName
    value: HeaderValue


class HTTPHeaderFilter(SpecModel):
    """Set, add or remove headers; each header name may appear in one action only."""

    set: Annotated[list[HTTPHeader], Field(max_length=16)] = Field(default_factory=list)
    add: Annotated[list[HTTPHeader], Field(max_length=16)] = Field(default_factory=list)
    remove: Annotated[list[HeaderName], Field(max_length=16)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_action_per_header(self) -> Self:
        seen: dict[str, str] = {}
        actions = [("set", h.name) for h in self.set] + [("add", h.name) for h in self.add]
        actions += [("remove", name) for name in self.remove]
        counters = {"set": 0, "add": 0, "remove": 0}
        for action, name in actions:
            i = counters[action]
            counters[action] += 1
            key = name.lower()
            if key in seen:
                at = f"{action}[{i}]" + (".name" if action != "remove" else "")
                raise field_error(at, f"header {name!r} already has an action ({seen[key]})")
            seen[key] = action
        return self


class Fraction(SpecModel):
    """numerator / denominator of requests."""

    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _check_ratio(self) -> Self:
        if self.numerator > self.denominator:
            raise field_error("numerator", "must not be more than the denominator")
        return self


class HTTPRequestMirrorFilter(SpecModel):
    """Send a copy of requests to another backend; its responses are ignored."""

    backend_ref: BackendObjectReference
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _percent_or_fraction(self) -> Self:
        if self.percent is not None and self.fraction is not None:
            raise field_error("fraction", "give either percent or fraction, not both")
        return self


class HTTPPathModifier(SpecModel):
    """A path rewrite: replace the whole path, or the prefix that the rule matched."""

    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: Annotated[str, Field(max_length=1024)] | None = None
    replace_prefix_match: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _check_type(self) -> Self:
        full, prefix = self.replace_full_path is not None, self.replace_prefix_match is not None
        if self.type == "ReplaceFullPath" and (not full or prefix):
            raise field_error("replaceFullPath", "type ReplaceFullPath needs replaceFullPath only")
        if self.type == "ReplacePrefixMatch" and (not prefix or full):
            raise field_error(
                "replacePrefixMatch", "type ReplacePrefixMatch needs replacePrefixMatch only"
            )
        field, value = (
            ("replaceFullPath", self.replace_full_path)
            if self.type == "ReplaceFullPath"
            else ("replacePrefixMatch", self.replace_prefix_match)
        )
        # An empty prefix replacement strips the prefix; anything else is a path.
        if value and not (value.startswith("/") and _PATH_CHARS.fullmatch(value)):
            raise field_error(field, f"must be an absolute path starting with '/', not {value!r}")
        if value == "" and self.type == "ReplaceFullPath":
            raise field_error(field, "must be an absolute path starting with '/', not ''")
        return self


class HTTPURLRewriteFilter(SpecModel):
    """Rewrite the Host header and/or the path before forwarding."""

    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


FilterType = Literal[
    "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "URLRewrite"
]

_FILTER_FIELDS: Mapping[str, str] = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "URLRewrite": "url_rewrite",
}
_UNSUPPORTED_FILTERS = ("RequestRedirect", "ExtensionRef", "CORS", "ExternalAuth")


class HTTPRouteFilter(SpecModel):
    """One processing step; ``type`` names it and the field of the same name configures it."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "requestRedirect": "",
        "extensionRef": "",
        "cors": "",
        "externalAuth": "",
    }

    type: FilterType
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None

    @classmethod
    def check_input(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        kind = data.get("type")
        if kind in _UNSUPPORTED_FILTERS:
            raise field_error("type", f"{kind} filters are not supported by meshpy")
        return data

    @model_validator(mode="after")
    def _field_matches_type(self) -> Self:
        wanted = _FILTER_FIELDS[self.type]
        fields = type(self).model_fields
        for kind, name in _FILTER_FIELDS.items():
            alias = fields[name].alias or name
            present = getattr(self, name) is not None
            if name == wanted and not present:
                raise field_error(alias, f"required for type {kind}")
            if name != wanted and present:
                raise field_error(alias, f"must not be set for type {self.type}")
        return self


def _check_filters(filters: list[HTTPRouteFilter]) -> list[HTTPRouteFilter]:
    once = ("RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite")
    seen: set[str] = set()
    for i, f in enumerate(filters):
        if f.type in once and f.type in seen:
            raise field_error(f"[{i}].type", f"{f.type} may be given once per rule")
        seen.add(f.type)
    return filters


Filters = Annotated[list[HTTPRouteFilter], Field(max_length=16), AfterValidator(_check_filters)]


# --- Backends, timeouts, retries ----------------------------------------------------------


class HTTPBackendRef(BackendObjectReference):
    """A backend Service and its share of the rule's requests (weight / sum of weights)."""

    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    filters: Filters = Field(default_factory=list)


class HTTPRouteTimeouts(SpecModel):
    """Limits on a request; "0s" disables one."""

    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _backend_within_request(self) -> Self:
        request, backend = self.request, self.backend_request
        if request and backend is not None and backend > request:
            raise field_error("backendRequest", "must not be longer than request")
        return self


MAX_RETRY_ATTEMPTS = 10
MAX_RETRY_BACKOFF = timedelta(seconds=10)


class HTTPRouteRetry(SpecModel):
    """When and how often to retry a request to a backend: ``attempts`` retries (2 when
    left out) after the first try, on the status ``codes`` (connection failures always),
    waiting about ``backoff`` (25 ms when left out) doubled each time, with jitter."""

    codes: Annotated[list[Annotated[int, Field(ge=400, le=599)]], Field(max_length=32)] = Field(
        default_factory=list
    )
    attempts: Annotated[int, Field(ge=0, le=MAX_RETRY_ATTEMPTS)] | None = None
    backoff: Duration | None = None

    @model_validator(mode="after")
    def _check_backoff(self) -> Self:
        if self.backoff is not None and not timedelta(0) < self.backoff <= MAX_RETRY_BACKOFF:
            raise field_error("backoff", "must be longer than 0s and at most 10s")
        return self


# --- Rules and spec -----------------------------------------------------------------------


def _default_matches() -> list[HTTPRouteMatch]:
    return [HTTPRouteMatch()]


class HTTPRouteRule(SpecModel):
    """Matches (any of), filters, and the backends that matching requests go to."""

    unsupported: ClassVar[Mapping[str, str]] = {"sessionPersistence": ""}

    name: SectionName | None = None
    matches: Annotated[list[HTTPRouteMatch], Field(max_length=64)] = Field(
        default_factory=_default_matches
    )
    filters: Filters = Field(default_factory=list)
    backend_refs: Annotated[list[HTTPBackendRef], Field(max_length=16)] = Field(
        default_factory=list
    )
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None

    @field_validator("matches")
    @classmethod
    def _default_when_empty(cls, matches: list[HTTPRouteMatch]) -> list[HTTPRouteMatch]:
        return matches or _default_matches()

    @model_validator(mode="after")
    def _prefix_rewrite_needs_one_prefix_match(self) -> Self:
        places = [("filters", self.filters)] + [
            (f"backendRefs[{i}].filters", ref.filters) for i, ref in enumerate(self.backend_refs)
        ]
        for where, filters in places:
            for j, f in enumerate(filters):
                path = f.url_rewrite.path if f.url_rewrite else None
                if path is None or path.type != "ReplacePrefixMatch":
                    continue
                if len(self.matches) != 1 or self.matches[0].path.type != "PathPrefix":
                    raise field_error(
                        f"{where}[{j}].urlRewrite.path",
                        "ReplacePrefixMatch needs exactly one match, of type PathPrefix",
                    )
        return self


def _default_rules() -> list[HTTPRouteRule]:
    return [HTTPRouteRule()]


class HTTPRouteSpec(SpecModel):
    """The spec of an HTTPRoute."""

    unsupported: ClassVar[Mapping[str, str]] = {"useDefaultGateways": "meshpy has no Gateways"}

    parent_refs: Annotated[list[ParentReference], Field(max_length=32)] = Field(
        default_factory=list
    )
    hostnames: Annotated[list[Hostname], Field(max_length=16)] = Field(default_factory=list)
    rules: Annotated[list[HTTPRouteRule], Field(min_length=1, max_length=16)] = Field(
        default_factory=_default_rules
    )

    @model_validator(mode="after")
    def _check_route(self) -> Self:
        total = sum(len(rule.matches) for rule in self.rules)
        if total > 128:
            raise field_error("rules", f"at most 128 matches in all rules together, got {total}")
        names: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name is not None:
                if rule.name in names:
                    raise field_error(f"rules[{i}].name", f"{rule.name!r} is used twice")
                names.add(rule.name)
        parents: dict[tuple[str | None, str], list[int | None]] = {}
        for i, ref in enumerate(self.parent_refs):
            ports = parents.setdefault((ref.namespace, ref.name), [])
            if ref.port in ports or (ports and (ref.port is None) != (ports[0] is None)):
                raise field_error(
                    f"parentRefs[{i}]",
                    f"Service {ref.name!r} is already a parent; several refs to one Service "
                    "must each name a different port",
                )
            ports.append(ref.port)
        return self


def refused_regular_expressions(rule: HTTPRouteRule) -> bool:
    """Whether a rule has a RegularExpression match that the data plane refuses.

    Validation refuses them now; a route stored before then may still hold one, and its
    rule is left out of snapshots rather than make every sidecar refuse its config.
    """
    return any(
        (m.path.type == "RegularExpression" and regex_problem(m.path.value) is not None)
        or any(h.type == "RegularExpression" and regex_problem(h.value) for h in m.headers)
        or any(q.type == "RegularExpression" and regex_problem(q.value) for q in m.query_params)
        for m in rule.matches
    )
