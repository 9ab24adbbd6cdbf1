"""The corpus: every family's drafts in a stable order, without repeats, numbered."""

from __future__ import annotations

from collections.abc import Iterator

from tests.security.smuggling.bodies import chunk_drafts, cl_drafts
from tests.security.smuggling.fields import expect_drafts, header_name_drafts, host_drafts
from tests.security.smuggling.model import ID_WIDTH, Case, Draft, Expect
from tests.security.smuggling.request_line import (
    http10_drafts,
    method_body_drafts,
    request_line_drafts,
)
from tests.security.smuggling.syntax import control_drafts, fold_drafts, line_end_drafts
from tests.security.smuggling.te import te_drafts, te_trailer_drafts


def drafts() -> Iterator[Draft]:
    """Every draft of every category, in a stable order."""
    yield from te_drafts()
    yield from te_trailer_drafts()
    yield from cl_drafts()
    yield from chunk_drafts()
    yield from line_end_drafts()
    yield from control_drafts()
    yield from fold_drafts()
    yield from http10_drafts()
    yield from expect_drafts()
    yield from request_line_drafts()
    yield from header_name_drafts()
    yield from host_drafts()
    yield from method_body_drafts()


def unique(all_drafts: Iterator[Draft]) -> list[Draft]:
    """The drafts without repeats: categories overlap (a folded Transfer-Encoding is both
    a TE and an obs-fold attack), and the first category to draft a request keeps it. Two
    drafts of the same bytes that disagree on what is expected are a bug in the corpus."""

    def forward(draft: Draft) -> tuple[object, ...]:
        # What a forward of the draft must look like; nothing of a rejected one is.
        if draft.expect is Expect.REJECT:
            return (draft.expect,)
        return draft.expect, draft.bodies, draft.keep_alive, draft.host

    kept: dict[bytes, Draft] = {}
    for draft in all_drafts:
        first = kept.setdefault(draft.raw, draft)
        if forward(first) != forward(draft):
            msg = f"{first.name!r} and {draft.name!r} are the same request, expected otherwise"
            raise ValueError(msg)
    return list(kept.values())


def corpus() -> list[Case]:
    """All cases, numbered in a stable order; the number is in each case's bytes."""
    return [draft.with_id(f"{i:0{ID_WIDTH}d}") for i, draft in enumerate(unique(drafts()))]
