"""One request through the mesh, explained from the registry's state as the sidecars decide it.

The caller's sidecar routes it: its outbound listener, built as ``meshpy.snapshot`` builds
it for that sidecar, is asked through ``_core.explain`` (the core's own planning). Then, for
each backend of the rule, the instances it reaches are grouped by version, and the inbound
listener of one instance of each group (built as for its sidecar) is asked the request as
the caller's sidecar forwards it: path rewritten, over mTLS with the caller's identity.
Names in the answer (HTTPRoute rules, BackendPolicies, AuthorizationPolicy rules) come
from where the snapshot builders took each part.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from meshpy import _core, proxyconfig
from meshpy.ca.spiffeid import workload_id
from meshpy.durations import format_duration
from meshpy.errors import MeshpyError
from meshpy.explain import words
from meshpy.explain.model import (
    AuthzDecision,
    Backend,
    BackendPolicyInForce,
    Caller,
    Destination,
    ExplainRequest,
    Explanation,
    MatchedRule,
    Mirror,
    Refusal,
    RequestShown,
    Retry,
    RouteDecision,
    SkippedMatch,
    Target,
)
from meshpy.resources import Resource
from meshpy.snapshot import InstanceInfo, MeshState, Part, build_inbound, build_outbound
from meshpy.snapshot.clusters import backend_policies, cluster_name
from meshpy.snapshot.routes import RuleOrigin, rule_origins
from meshpy.snapshot.state import MeshService

__all__ = ["ExplainError", "explain"]

_POLICY_SETTINGS = (
    "hash_on",
    "outlier_detection",
    "circuit_breakers",
    "retry_budget",
    "slow_start",
    "fault",
)
"""The cluster fields a BackendPolicy sets, besides ``lb``."""


class ExplainError(MeshpyError, ValueError):
    """The question is not one the mesh can answer: ``path`` names the field, ``message`` why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def explain(state: MeshState, ask: ExplainRequest) -> Explanation:
    """What the mesh in ``state`` does with ``ask``; ExplainError for an unknown service or a
    request the core cannot take."""
    services = state.service_index()
    source_ns = ask.source.namespace or "default"
    source = (source_ns, ask.source.service)
    if source not in services:
        raise ExplainError("source.service", f"no service {source_ns}/{source[1]}")
    destination = (ask.destination.namespace or source_ns, ask.destination.service)
    if destination not in services:
        raise ExplainError("destination.service", f"no service {destination[0]}/{destination[1]}")
    host = destination[1] if destination[0] == source_ns else ".".join(destination[::-1])
    path, _, query = ask.path.partition("?")
    identity = _identity(state, source, services)
    mesh = _Mesh(
        state=state,
        method=ask.method,
        host=host,
        query=query or None,
        headers=[(h.name, h.value) for h in ask.headers],
        identity=identity,
    )
    outbound = build_outbound(state, source_ns)
    try:
        answer = mesh.ask(outbound, "outbound", target=ask.path, host=host, identity=None)
    except ValueError as exc:
        raise ExplainError("", str(exc)) from None
    sent: list[dict[str, Any]] = answer.get("backends", [])
    total = sum(b["weight"] for b in sent)
    clusters = {c["name"]: c for c in outbound.clusters}
    return Explanation(
        source=Caller(namespace=source_ns, service=source[1], identity=identity),
        destination=Target(namespace=destination[0], service=destination[1], host=host),
        request=RequestShown(
            method=ask.method, path=path, query=query or None, headers=ask.headers
        ),
        route=mesh.route(source_ns, outbound.listeners[0], answer),
        refused=_refusal(answer["refused"]),
        backends=[mesh.backend(b, total, clusters[b["cluster"]]) for b in sent],
    )


def _identity(
    state: MeshState, source: tuple[str, str], services: Mapping[tuple[str, str], MeshService]
) -> str | None:
    """The SPIFFE ID the caller's sidecar presents, or None when sidecars talk plaintext."""
    mtls = state.mtls
    if mtls is None:
        return None
    return workload_id(mtls.trust_domain, source[0], services[source].parent or source[1])


def _refusal(refused: dict[str, Any] | None) -> Refusal | None:
    if refused is None:
        return None
    return Refusal(status=refused["status"], reason=refused["reason"], detail=refused["detail"])


def _ms(value: int | None) -> str | None:
    return None if value is None else format_duration(timedelta(milliseconds=value))


@dataclass(frozen=True, kw_only=True)
class _Mesh:
    """The state, and the request as the caller's app sends it: asks sidecars' listeners."""

    state: MeshState
    method: str
    host: str
    """As the caller's app sends it."""
    query: str | None
    headers: list[tuple[str, str]]
    identity: str | None
    """The caller's sidecar's, as destinations see it."""

    @functools.cached_property
    def by_cluster(self) -> dict[str, tuple[str, str]]:
        """Each service's (and version service's) key, by the name of its cluster."""
        return {cluster_name(ns, name): (ns, name) for ns, name in self.state.service_index()}

    @functools.cached_property
    def policies(self) -> dict[tuple[str, str], Resource]:
        """The BackendPolicy in force for each service that has one."""
        return backend_policies(self.state)

    @functools.cached_property
    def default(self) -> str:
        """The mesh default of authorization."""
        settings = self.state.identity
        return settings.authz_default if settings is not None else "all-unauthenticated"

    def ask(
        self, part: Part, listener: str, *, target: str, host: str, identity: str | None
    ) -> dict[str, Any]:
        """The core's explanation of the request on a listener of a snapshot part."""
        return _core.explain(
            json.dumps({"listeners": part.listeners, "clusters": part.clusters}),
            listener,
            host=host,
            method=self.method,
            target=target,
            headers=self.headers,
            identity=identity,
        )

    def route(
        self, namespace: str, listener: proxyconfig.Listener, answer: dict[str, Any]
    ) -> RouteDecision:
        """The rule the outbound listener chose and the matches it passed over, by HTTPRoute."""
        route = answer["route"] or {}
        vhost_name = route.get("virtual_host")
        vhost = next((v for v in listener.get("routes", []) if v["name"] == vhost_name), None)
        origins: list[RuleOrigin] = []
        if vhost is not None and vhost["name"] in self.by_cluster:
            service = self.by_cluster[vhost["name"]]
            origins = rule_origins(
                self.state.routes, self.state.service_index(), namespace, service
            )

        def where(step: dict[str, Any]) -> tuple[str | None, int, proxyconfig.RouteMatch | None]:
            rule, match = step["rule"], step["match"]
            origin = origins[rule] if rule < len(origins) else RuleOrigin(None, rule)
            name = None
            if origin.route is not None:
                name = f"{origin.route.effective_namespace}/{origin.route.name}"
            config = None
            if vhost is not None and match is not None:
                config = vhost["rules"][rule].get("matches", [])[match]
            return name, origin.index, config

        skipped = []
        for step in route.get("tried", []):
            if step["failed"] is not None:
                name, index, config = where(step)
                failed = words.failed_condition(config, step["failed"])
                skipped.append(
                    SkippedMatch(route=name, rule=index, match=step["match"], failed=failed)
                )
        matched = None
        if route.get("matched") is not None:
            name, index, config = where(route["matched"])
            matched = MatchedRule(
                route=name,
                rule=index,
                match=route["matched"]["match"],
                conditions=words.match_conditions(config),
            )
        retry = answer.get("retry")
        return RouteDecision(
            virtual_host=vhost_name,
            matched=matched,
            skipped=skipped,
            timeout=_ms(answer.get("timeout_ms")),
            backend_timeout=_ms(answer.get("backend_timeout_ms")),
            retry=None
            if retry is None
            else Retry(
                attempts=retry["attempts"],
                codes=retry["codes"],
                backoff=_ms(retry["backoff_ms"]) or "0ms",
            ),
        )

    def backend(self, sent: dict[str, Any], total: int, cluster: proxyconfig.Cluster) -> Backend:
        """One backend of the chosen rule: its share, its cluster's policy, its destinations."""
        key = self.by_cluster.get(sent["cluster"])
        policy = self.policies.get(key) if key is not None else None
        fields: dict[str, Any] = dict(cluster)
        endpoints = len(fields.get("endpoints", []))
        destinations: list[Destination] = []
        refused = None
        if sent["weight"] > 0 and key is not None and endpoints:
            destinations = self.destinations(key, sent["path"], sent["host"] or self.host)
        elif sent["weight"] > 0 and not endpoints:
            refused = Refusal(
                status=503,
                reason="no_endpoints",
                detail=f"cluster {sent['cluster']} has no healthy endpoint",
            )
        return Backend(
            cluster=sent["cluster"],
            namespace=key[0] if key else None,
            service=key[1] if key else None,
            weight=sent["weight"],
            share=100 * sent["weight"] / total if total else 0.0,
            path=sent["path"],
            host=sent["host"],
            mirrors=[Mirror(cluster=m["cluster"], percent=m["percent"]) for m in sent["mirrors"]],
            endpoints=endpoints,
            policy=BackendPolicyInForce(
                name=f"{policy.effective_namespace}/{policy.name}" if policy else None,
                load_balancer=fields.get("lb", "round_robin"),
                settings={name: fields[name] for name in _POLICY_SETTINGS if name in fields},
            ),
            destinations=destinations,
            refused=refused,
        )

    def destinations(self, service: tuple[str, str], path: str, host: str) -> list[Destination]:
        """The instances behind a service's cluster by version, and what each group's
        sidecars decide on the request sent with ``path`` and ``host``."""
        groups: dict[tuple[str, str, bool], list[InstanceInfo]] = {}
        for inst in self.state.endpoint_instances(*service):
            key = (inst.service, inst.version or "", inst.app_port is not None)
            groups.setdefault(key, []).append(inst)
        return [
            self._destination(sorted(groups[key], key=lambda i: i.id), path, host)
            for key in sorted(groups)
        ]

    def _destination(self, group: list[InstanceInfo], path: str, host: str) -> Destination:
        own = group[0]
        ids = [inst.id for inst in group]
        part = build_inbound(self.state, own)
        if not part.listeners:
            # Registered without an app port: nothing listens on its inbound port.
            return Destination(
                version=own.version,
                instances=ids,
                path=path,
                authorization=self._decision(None, None, path),
                refused=Refusal(
                    status=502,
                    reason="connect_failed",
                    detail="the instance has no app, so its sidecar has no inbound listener",
                ),
            )
        listener = part.listeners[0]
        target = f"{path}?{self.query}" if self.query is not None else path
        answer = self.ask(part, listener["name"], target=target, host=host, identity=self.identity)
        return Destination(
            version=own.version,
            instances=ids,
            path=answer["path"],
            authorization=self._decision(answer["authorization"], listener, answer["path"]),
            refused=_refusal(answer["refused"]),
        )

    def _decision(
        self, authz: dict[str, Any] | None, listener: proxyconfig.Listener | None, path: str
    ) -> AuthzDecision:
        """A destination's decision, with the policy rule that made it, in words too."""
        who = self.identity or "an unauthenticated caller"
        if authz is None or authz["decision"] is None:
            return AuthzDecision(
                allowed=True,
                by="default",
                policy=None,
                action=None,
                rule=None,
                rule_text=None,
                default=self.default,
                audited=[],
                why=f"no AuthorizationPolicy applies to these instances and the mesh default, "
                f"{self.default}, allows everyone",
            )
        decision = authz["decision"]
        allowed = bool(decision["allowed"])
        verb = "allows" if allowed else "refuses"
        policies: list[proxyconfig.AuthzPolicy] = []
        if listener is not None and (config := listener.get("authorization")):
            policies = config.get("policies", [])
        policy = next((p for p in policies if p["name"] == decision["policy"]), None)
        action: Literal["allow", "deny"] | None = None
        rule_text = None
        if decision["by"] == "policy" and policy is not None:
            action = "allow" if policy["action"] == "allow" else "deny"
            rule_text = words.authz_rule(policy["rules"][decision["rule"]])
            why = (
                f"rule {decision['rule']} of {action.upper()} policy {policy['name']} "
                f"({rule_text}) matches: it {verb} the request"
            )
        elif decision["by"] == "no_allow_match":
            names = ", ".join(p["name"] for p in policies if p["action"] == "allow")
            why = (
                f"ALLOW policies apply to these instances ({names}) and no rule of theirs "
                f"matches {who} {self.method} {path}"
            )
        else:
            why = f"no policy decides: the mesh default, {self.default}, {verb} {who}"
        return AuthzDecision(
            allowed=allowed,
            by=decision["by"],
            policy=decision["policy"],
            action=action,
            rule=decision["rule"],
            rule_text=rule_text,
            default=self.default,
            audited=authz["audited"],
            why=why,
        )
