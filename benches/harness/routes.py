"""Route rules described once, and written as meshpy's rules and as Envoy's routes."""

from __future__ import annotations

from dataclasses import dataclass

from harness.common import Json


@dataclass(frozen=True)
class Rule:
    """A rule of a virtual host; `rewrite` is the path its requests reach the backend with."""

    kind: str  # Exact, RegularExpression or PathPrefix
    path: str
    header: tuple[str, str] | None = None  # an exact header match
    rewrite: str | None = None  # Exact, RegularExpression: the new path; PathPrefix: the prefix


@dataclass(frozen=True)
class Retry:
    """A rule's retries: how many, on which statuses, after what backoff."""

    attempts: int
    codes: tuple[int, ...]
    backoff_ms: int

    def meshpy(self) -> Json:
        """As meshpy's `retry` of a rule."""
        return {
            "attempts": self.attempts,
            "codes": list(self.codes),
            "backoff": f"{self.backoff_ms}ms",
        }

    def envoy(self) -> Json:
        """As Envoy's `retry_policy` of a route."""
        return {
            # meshpy always retries connection failures too.
            "retry_on": "connect-failure,retriable-status-codes",
            "retriable_status_codes": list(self.codes),
            "num_retries": self.attempts,
            "retry_back_off": {"base_interval": f"{self.backoff_ms / 1000:g}s"},
        }


def meshpy_rule(rule: Rule, cluster: str, retry: Retry) -> Json:
    match: Json = {"path": {"type": rule.kind, "value": rule.path}}
    if rule.header:
        match["headers"] = [{"name": rule.header[0], "value": rule.header[1]}]
    out: Json = {"matches": [match], "backends": [{"cluster": cluster}], "retry": retry.meshpy()}
    if rule.rewrite:
        kind = "ReplacePrefixMatch" if rule.kind == "PathPrefix" else "ReplaceFullPath"
        out["filters"] = {"url_rewrite": {"path": {"type": kind, "value": rule.rewrite}}}
    return out


def envoy_route(rule: Rule, cluster: str, retry: Retry) -> Json:
    match: Json
    if rule.kind == "Exact":
        match = {"path": rule.path}
    elif rule.kind == "RegularExpression":
        match = {"safe_regex": {"regex": rule.path}}
    elif rule.path == "/":
        match = {"prefix": "/"}
    else:  # meshpy's PathPrefix matches whole segments, as this does
        match = {"path_separated_prefix": rule.path}
    if rule.header:
        name, value = rule.header
        match["headers"] = [{"name": name, "string_match": {"exact": value}}]
    action: Json = {"cluster": cluster, "retry_policy": retry.envoy()}
    if rule.rewrite and rule.kind == "PathPrefix":
        action["prefix_rewrite"] = rule.rewrite
    elif rule.rewrite:
        action["regex_rewrite"] = {"pattern": {"regex": "^.*$"}, "substitution": rule.rewrite}
    return {"match": match, "route": action}
