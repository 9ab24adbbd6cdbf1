"""HTTP/1 request-smuggling corpus, a strict recording backend, and the verdict on each case."""

from __future__ import annotations

from tests.security.smuggling.assembly import corpus, drafts, unique
from tests.security.smuggling.backend import Seen, StrictBackend
from tests.security.smuggling.client import Exchange, parse_responses, run_case
from tests.security.smuggling.model import ID_SLOT, SMUGGLED, Case, Draft, Expect, transfer_encoding
from tests.security.smuggling.parsing import decode_chunked, parse_request
from tests.security.smuggling.syntax import control_expectation
from tests.security.smuggling.te import Layout, TeMeaning, te_expectation, te_request
from tests.security.smuggling.verdict import Outcome, Verdict, group_by_case, judge

__all__ = [
    "ID_SLOT",
    "SMUGGLED",
    "Case",
    "Draft",
    "Exchange",
    "Expect",
    "Layout",
    "Outcome",
    "Seen",
    "StrictBackend",
    "TeMeaning",
    "Verdict",
    "control_expectation",
    "corpus",
    "decode_chunked",
    "drafts",
    "group_by_case",
    "judge",
    "parse_request",
    "parse_responses",
    "run_case",
    "te_expectation",
    "te_request",
    "transfer_encoding",
    "unique",
]
