"""Building blocks of the resource models: the strict base model, names, durations, references.

Every model here and in the kind modules derives from ``SpecModel``: unknown fields are
refused (with a "did you mean" hint), fields of the Gateway API that meshpy does not
implement are refused by name ("not supported by meshpy"), values are not coerced
(``"5"`` is not a weight), and a dump leaves out unset optional fields and empty lists.

Documents (YAML, REST JSON) must spell fields as the Gateway API does, in camelCase;
Python code may also use the snake_case attribute names (``backend_refs=[...]``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

DOCUMENT_CONTEXT: Mapping[str, Any] = {"meshpy_document": True}
"""Validation context for documents: only the camelCase field names are accepted."""

FIELD_ERROR = "meshpy_field"
VALUE_ERROR = "meshpy_value"


def field_error(at: str, message: str) -> PydanticCustomError:
    """An error about the sub-field ``at`` ("backendRequest", "filters[1]") of the model."""
    return PydanticCustomError(FIELD_ERROR, "{message}", {"at": at, "message": message})


def value_error(message: str) -> PydanticCustomError:
    """An error about the value being validated, with exactly this message."""
    return PydanticCustomError(VALUE_ERROR, "{message}", {"message": message})


class SpecModel(BaseModel):
    """Base of every resource model: strict, frozen, camelCase in documents."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        alias_generator=to_camel,
    )

    unsupported: ClassVar[Mapping[str, str]] = {}
    """Gateway API fields meshpy refuses, by their document name, with a hint (may be "")."""
    ignored: ClassVar[frozenset[str]] = frozenset()
    """Document fields accepted and dropped (server-owned Kubernetes metadata)."""
    keep_empty: ClassVar[frozenset[str]] = frozenset()
    """Fields whose empty list means something different from an absent one."""

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = cls.check_input(data)
        document = bool(info.context and info.context.get("meshpy_document"))
        aliases = [f.alias or name for name, f in cls.model_fields.items()]
        known = set(aliases) if document else set(aliases) | set(cls.model_fields)
        for key in data:
            if key in known or key in cls.ignored:
                continue
            if key in cls.unsupported:
                hint = cls.unsupported[key]
                raise field_error(key, "not supported by meshpy" + (f" ({hint})" if hint else ""))
            if not isinstance(key, str):
                raise value_error(f"field names must be strings, not {key!r}")
            close = difflib.get_close_matches(key, aliases, n=1, cutoff=0.6)
            if not close:
                close = [a for a in aliases if a.lower() == key.replace("_", "").lower()]
            raise field_error(
                key, "unknown field" + (f"; did you mean {close[0]!r}?" if close else "")
            )
        if cls.ignored:
            data = {k: v for k, v in data.items() if k not in cls.ignored}
        return data

    @classmethod
    def check_input(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """Hook for checks of the raw mapping, before anything else."""
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # A dump is the fields less the unset ones, so describe the fields, not the serializer.
        return handler(_without_serializer(core_schema))

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        keep = {fields[n].alias or n for n in self.keep_empty} | set(self.keep_empty)
        return {k: v for k, v in data.items() if v is not None and (v != [] or k in keep)}


def _without_serializer(schema: CoreSchema) -> CoreSchema:
    if schema["type"] == "model":
        return cast(CoreSchema, {k: v for k, v in schema.items() if k != "serialization"})
    inner = schema.get("schema")
    if isinstance(inner, dict):
        return cast(CoreSchema, {**schema, "schema": _without_serializer(cast(CoreSchema, inner))})
    return schema


# --- Names -------------------------------------------------------------------------------

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"


def is_dns_label(value: str) -> bool:
    """Whether ``value`` is an RFC 1123 label: what a namespace or a service is called."""
    return len(value) <= 63 and re.fullmatch(_DNS_LABEL, value) is not None


def _text_check(
    pattern: str | None, what: str, max_length: int, min_length: int = 1
) -> AfterValidator:
    compiled = re.compile(pattern) if pattern else None

    def check(value: str) -> str:
        if len(value) < min_length:
            raise value_error("must not be empty")
        if len(value) > max_length:
            raise value_error(f"must be at most {max_length} characters")
        if compiled is not None and not compiled.fullmatch(value):
            raise value_error(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _text_schema(pattern: str | None, max_length: int, min_length: int = 1) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if pattern:
        schema["pattern"] = f"^{pattern}$"
    return WithJsonSchema(schema)


_LOWER_NAME = "a valid name: lower-case letters, digits and '-', starting and ending alphanumeric"
_LOWER_DOTTED = _LOWER_NAME.replace("digits and '-'", "digits, '-' and '.'")

Namespace = Annotated[str, _text_check(_DNS_LABEL, _LOWER_NAME, 63), _text_schema(_DNS_LABEL, 63)]
"""A namespace: an RFC 1123 label of at most 63 characters."""

ResourceName = Annotated[
    str,
    _text_check(_DNS_SUBDOMAIN, _LOWER_DOTTED, 253),
    _text_schema(_DNS_SUBDOMAIN, 253),
]
"""The name of a resource (metadata.name): an RFC 1123 subdomain."""

ObjectName = Annotated[str, _text_check(None, "", 253), _text_schema(None, 253)]
"""The name of a referenced object (Gateway API ObjectName: 1 to 253 characters)."""

SectionName = Annotated[
    str,
    _text_check(_DNS_SUBDOMAIN, _LOWER_DOTTED, 253),
    _text_schema(_DNS_SUBDOMAIN, 253),
]
"""A rule name (Gateway API SectionName)."""

_GROUP = rf"({_DNS_SUBDOMAIN})?"
Group = Annotated[
    str,
    _text_check(_GROUP, 'an API group ("" or a DNS subdomain)', 253, min_length=0),
    _text_schema(_GROUP, 253, min_length=0),
]
"""An API group; "" is the core group (Services)."""

_KIND = r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?"
Kind = Annotated[str, _text_check(_KIND, "a kind such as Service", 63), _text_schema(_KIND, 63)]
"""A resource kind, e.g. Service."""

_HOSTNAME = rf"(\*\.)?{_DNS_SUBDOMAIN}"
Hostname = Annotated[
    str,
    _text_check(_HOSTNAME, "a host name (lower case, optionally starting with '*.')", 253),
    _text_schema(_HOSTNAME, 253),
]
"""A Gateway API Hostname: lower case, no IPs, an optional leading ``*.`` label."""

PreciseHostname = Annotated[
    str,
    _text_check(_DNS_SUBDOMAIN, "a lower-case host name", 253),
    _text_schema(_DNS_SUBDOMAIN, 253),
]
"""A Gateway API PreciseHostname: a host name without wildcard."""

_HEADER_NAME = r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+"
HeaderName = Annotated[
    str,
    _text_check(_HEADER_NAME, "a valid HTTP header name", 256),
    _text_schema(_HEADER_NAME, 256),
]
"""An HTTP header (or query parameter) name: RFC 7230 token characters, no ':'."""

MethodToken = Annotated[
    str,
    _text_check(_HEADER_NAME, "an HTTP method (a token, such as GET)", 32),
    _text_schema(_HEADER_NAME, 32),
]
"""Any HTTP method, extension methods included: a token (RFC 9110), e.g. GET or PROPFIND."""

_ORIGIN_FORM = r"/[!-~]*"
RequestTarget = Annotated[
    str,
    _text_check(_ORIGIN_FORM, "a request path (it starts with '/' and has no spaces)", 8192),
    _text_schema(_ORIGIN_FORM, 8192),
]
"""A request target in origin form: a path starting with '/', with a query or not."""

_HEADER_VALUE = r"[!-~]+([\t ]?[!-~]+)*"
HeaderValue = Annotated[
    str,
    _text_check(
        _HEADER_VALUE,
        "a header value (printable ASCII, single spaces or tabs between words)",
        4096,
    ),
    _text_schema(_HEADER_VALUE, 4096),
]
"""An HTTP header value: printable US-ASCII separated by single spaces or tabs."""

PortNumber = Annotated[int, Field(ge=1, le=65535)]
"""A TCP port, 1 to 65535."""

HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
"""An HTTP method, upper case, as the Gateway API enumerates them."""


# --- Durations (Gateway API GEP-2257) ----------------------------------------------------

DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


def parse_gateway_duration(value: object) -> timedelta:
    """Read a Gateway API duration ("10s", "500ms", "1h2m"); timedeltas pass through, checked."""
    if isinstance(value, timedelta):
        if value < timedelta(0) or value % timedelta(milliseconds=1):
            msg = "must be a whole, non-negative number of milliseconds"
            raise value_error(msg)
        if value >= timedelta(hours=100_000):
            raise value_error("must be shorter than 100000h")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise value_error(f'{value} has no unit: write a duration such as "{value}s"')
    if not isinstance(value, str):
        raise value_error('must be a duration such as "10s" or "1h30m"')
    if not _DURATION.fullmatch(value):
        msg = (
            f"invalid duration {value!r}: use up to four parts of a number and a unit "
            '(h, m, s, ms), e.g. "10s", "500ms", "1h30m"'
        )
        raise value_error(msg)
    millis = sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(value))
    return timedelta(milliseconds=millis)


def format_gateway_duration(value: timedelta) -> str:
    """Spell a duration the canonical Gateway API way: "1h2m", "1s500ms", "0s"."""
    millis = value // timedelta(milliseconds=1)
    if millis == 0:
        return "0s"
    parts = []
    for unit in ("h", "m", "s", "ms"):
        count, millis = divmod(millis, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise value_error("must be longer than zero")
    return value


_DURATION_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": 'A Gateway API duration (GEP-2257), e.g. "10s", "500ms", "1h30m".',
    }
)

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_gateway_duration),
    PlainSerializer(format_gateway_duration, return_type=str, when_used="json"),
    _DURATION_SCHEMA,
]
"""A Gateway API duration: a timedelta in Python, "1h2m"-style text in documents; "0s" allowed."""

PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_gateway_duration),
    AfterValidator(_positive),
    PlainSerializer(format_gateway_duration, return_type=str, when_used="json"),
    _DURATION_SCHEMA,
]
"""A Gateway API duration longer than zero."""


# --- References ---------------------------------------------------------------------------


def _core_group(value: object) -> object:
    if value != "":
        raise value_error(f'must be "" (the core API group, where Services are), not {value!r}')
    return value


def _service_kind(what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if value != "Service":
            raise value_error(f"{what} Services (kind: Service), not {value!r}")
        return value

    return BeforeValidator(check)


class ParentReference(SpecModel):
    """The Service a route attaches to (GAMMA); ``group`` is "" or absent, ``kind: Service``."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "sectionName": "attach to the whole Service, or to one port with 'port'"
    }

    group: Annotated[Literal[""], BeforeValidator(_core_group)] = ""
    kind: Annotated[Literal["Service"], _service_kind("meshpy routes attach to")]
    namespace: Namespace | None = None
    name: ObjectName
    port: PortNumber | None = None

    @classmethod
    def check_input(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if "kind" not in data:
            raise field_error(
                "kind",
                'required: meshpy routes attach to a Service (kind: Service, group: ""); '
                "without a kind the Gateway API means a Gateway",
            )
        return data

    @classmethod
    def service(
        cls, name: str, *, namespace: str | None = None, port: int | None = None
    ) -> ParentReference:
        """A parent reference to the Service ``name``."""
        return cls(kind="Service", name=name, namespace=namespace, port=port)


class BackendObjectReference(SpecModel):
    """A backend object; meshpy resolves kind Service in the core group ("")."""

    group: Group = ""
    kind: Kind = "Service"
    name: ObjectName
    namespace: Namespace | None = None
    port: PortNumber | None = None


class PolicyTargetReference(SpecModel):
    """The Service a policy applies to (GEP-713 LocalPolicyTargetReference)."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "sectionName": "a policy applies to the whole Service",
        "selector": "target a Service by name",
    }

    group: Annotated[Literal[""], BeforeValidator(_core_group)] = ""
    kind: Annotated[Literal["Service"], _service_kind("meshpy policies apply to")]
    name: ObjectName

    @classmethod
    def service(cls, name: str) -> PolicyTargetReference:
        """A target reference to the Service ``name`` in the policy's namespace."""
        return cls(kind="Service", name=name)


def unique_targets(refs: list[PolicyTargetReference]) -> list[PolicyTargetReference]:
    """Refuse the same Service named twice in ``targetRefs``."""
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        if ref.name in seen:
            raise field_error(f"[{i}].name", f"Service {ref.name!r} is listed twice")
        seen.add(ref.name)
    return refs
