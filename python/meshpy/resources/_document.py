"""Whole documents: the kinds, metadata, the Resource class and parsing of one document."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, ValidationError

from meshpy.resources import _errors as errors
from meshpy.resources._common import (
    DOCUMENT_CONTEXT,
    Namespace,
    ResourceName,
    SpecModel,
    value_error,
)
from meshpy.resources._errors import ResourceError
from meshpy.resources.authorization import AuthorizationPolicySpec
from meshpy.resources.backendpolicy import BackendPolicySpec
from meshpy.resources.httproute import HTTPRouteSpec
from meshpy.resources.tracingpolicy import TracingPolicySpec

DEFAULT_NAMESPACE = "default"
"""The namespace of a resource whose metadata names none."""

Spec = HTTPRouteSpec | BackendPolicySpec | AuthorizationPolicySpec | TracingPolicySpec
"""The spec model of any kind."""


# --- Kinds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindInfo:
    """A kind of resource: its names, API version and spec model."""

    kind: str
    api_version: str
    plural: str
    model: type[SpecModel]
    short_names: tuple[str, ...] = ()
    other_api_versions: tuple[str, ...] = ()
    """Older API versions with the same schema, accepted and stored as ``api_version``."""

    @property
    def singular(self) -> str:
        """The lower-case kind: "httproute"."""
        return self.kind.lower()


KINDS: dict[str, KindInfo] = {
    "httproutes": KindInfo(
        kind="HTTPRoute",
        api_version="gateway.networking.k8s.io/v1",
        plural="httproutes",
        model=HTTPRouteSpec,
        short_names=("route", "routes", "hr"),
        other_api_versions=("gateway.networking.k8s.io/v1beta1",),
    ),
    "backendpolicies": KindInfo(
        kind="BackendPolicy",
        api_version="policy.meshpy.io/v1alpha1",
        plural="backendpolicies",
        model=BackendPolicySpec,
        short_names=("bp",),
    ),
    "authorizationpolicies": KindInfo(
        kind="AuthorizationPolicy",
        api_version="policy.meshpy.io/v1alpha1",
        plural="authorizationpolicies",
        model=AuthorizationPolicySpec,
        short_names=("authz", "ap"),
    ),
    "tracingpolicies": KindInfo(
        kind="TracingPolicy",
        api_version="policy.meshpy.io/v1alpha1",
        plural="tracingpolicies",
        model=TracingPolicySpec,
        short_names=("tp",),
    ),
}
"""Every kind, by plural name (the REST path segment)."""

_BY_KIND = {info.kind: info for info in KINDS.values()}
_BY_SPEC: dict[type[SpecModel], KindInfo] = {info.model: info for info in KINDS.values()}
_LOOKUP = {
    name: info
    for info in KINDS.values()
    for name in (info.plural, info.singular, *info.short_names)
}


def kind_info(name: str) -> KindInfo | None:
    """Find a kind by plural, kind or short name, any case ("httproutes", "HTTPRoute", "hr")."""
    return _LOOKUP.get(name.lower())


# --- Metadata -----------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return "its prefix must be a DNS subdomain such as example.com"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return "its name must be 1-63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
    return None


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        problem = _key_problem(key)
        if problem:
            raise value_error(f"invalid label key {key!r}: {problem}")
        if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
            raise value_error(
                f"invalid value {value!r} of label {key!r}: at most 63 letters, digits, "
                "'-', '_' or '.', alphanumeric at both ends"
            )
    return labels


def _check_annotations(annotations: dict[str, str]) -> dict[str, str]:
    for key in annotations:
        problem = _key_problem(key)
        if problem:
            raise value_error(f"invalid annotation key {key!r}: {problem}")
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        raise value_error("annotations may hold at most 256 KiB")
    return annotations


class ObjectMeta(SpecModel):
    """The metadata meshpy keeps; server-owned Kubernetes fields are accepted and dropped."""

    ignored: ClassVar[frozenset[str]] = frozenset(
        {
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        }
    )
    unsupported: ClassVar[Mapping[str, str]] = {
        "generateName": "give a name",
        "ownerReferences": "",
        "finalizers": "",
    }

    name: ResourceName
    namespace: Namespace | None = None
    labels: Annotated[dict[str, str], AfterValidator(_check_labels)] = Field(default_factory=dict)
    annotations: Annotated[dict[str, str], AfterValidator(_check_annotations)] = Field(
        default_factory=dict
    )


# --- Resources ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One validated resource: kind, identity, labels and its spec model."""

    kind: str
    api_version: str
    namespace: str | None
    name: str
    spec: Spec
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        spec: Spec,
        *,
        name: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Resource:
        """Build a resource from a spec made in Python; validated like a document."""
        info = _BY_SPEC[type(spec)]
        metadata: dict[str, Any] = {"name": name}
        if namespace is not None:
            metadata["namespace"] = namespace
        if labels:
            metadata["labels"] = dict(labels)
        if annotations:
            metadata["annotations"] = dict(annotations)
        return parse(
            {
                "apiVersion": info.api_version,
                "kind": info.kind,
                "metadata": metadata,
                "spec": spec.model_dump(mode="json", by_alias=True),
            }
        )

    @property
    def info(self) -> KindInfo:
        """The kind's KindInfo."""
        return _BY_KIND[self.kind]

    @property
    def effective_namespace(self) -> str:
        """The namespace, or "default" when the metadata names none."""
        return self.namespace or DEFAULT_NAMESPACE

    def spec_dict(self) -> dict[str, Any]:
        """The spec as canonical JSON data: camelCase, defaults filled, unset fields left out."""
        data: dict[str, Any] = self.spec.model_dump(mode="json", by_alias=True)
        return data

    def to_document(
        self, status: Mapping[str, Any] | None = None, generation: int | None = None
    ) -> dict[str, Any]:
        """The whole document, as ``meshpy get -o yaml`` shows it and ``parse`` reads it back."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.namespace is not None:
            metadata["namespace"] = self.namespace
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        if generation is not None:
            metadata["generation"] = generation
        doc: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec_dict(),
        }
        if status is not None:
            doc["status"] = dict(status)
        return doc


# --- Parsing ------------------------------------------------------------------------------

_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


def parse(doc: Mapping[str, Any]) -> Resource:
    """Validate one document (a dict from YAML or JSON) into a Resource.

    Raises ResourceError naming the first bad field, e.g. ``spec.rules[0].backendRefs[1].weight``;
    ``status`` and server-owned metadata (uid, resourceVersion, ...) are accepted and ignored.
    """
    if not isinstance(doc, Mapping):  # callers pass whatever a YAML or JSON parser returned
        kind = errors.type_name(doc)  # type: ignore[unreachable]
        raise ResourceError(
            "", f"expected a mapping with apiVersion, kind, metadata, spec; not {kind}"
        )
    info = _document_kind(doc)
    api_version = doc.get("apiVersion")
    if api_version is None:
        raise ResourceError("apiVersion", f"required: {info.kind} is {info.api_version}")
    if api_version != info.api_version and api_version not in info.other_api_versions:
        msg = f"{info.kind} is {info.api_version}, not {api_version!r}"
        raise ResourceError("apiVersion", msg)
    for key in doc:
        if key not in _TOP_LEVEL:
            raise ResourceError(str(key), "unknown field")
    for key in ("metadata", "spec"):
        if doc.get(key) is None:
            raise ResourceError(key, "required")
    problems: list[tuple[str, str]] = []
    metadata = _validate(ObjectMeta, doc["metadata"], "metadata", problems)
    spec = _validate(info.model, doc["spec"], "spec", problems)
    if metadata is None or spec is None:
        path, message = problems[0]
        raise ResourceError(path, message, details=tuple(problems))
    assert isinstance(metadata, ObjectMeta)
    assert isinstance(spec, Spec)
    return Resource(
        kind=info.kind,
        api_version=info.api_version,
        namespace=metadata.namespace,
        name=metadata.name,
        spec=spec,
        labels=metadata.labels,
        annotations=metadata.annotations,
    )


def _document_kind(doc: Mapping[str, Any]) -> KindInfo:
    kinds = ", ".join(f"{i.kind} ({i.api_version})" for i in KINDS.values())
    kind = doc.get("kind")
    if kind is None:
        raise ResourceError("kind", f"required: one of {kinds}")
    info = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if info is None:
        close = kind_info(kind) if isinstance(kind, str) else None
        hint = f"did you mean {close.kind}?" if close else f"meshpy knows {kinds}"
        raise ResourceError("kind", f"unknown kind {kind!r}; {hint}")
    return info


def _validate(
    model: type[SpecModel], data: object, prefix: str, problems: list[tuple[str, str]]
) -> SpecModel | None:
    try:
        return model.model_validate(data, context=DOCUMENT_CONTEXT)
    except ValidationError as exc:
        problems.extend(errors.problems(exc, prefix))
        return None
