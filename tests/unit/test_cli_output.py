"""Table output of the CLI."""

from __future__ import annotations

from meshpy.cli._output import table


def test_table_aligns_columns_and_marks_empty_cells() -> None:
    assert table(
        ["NAME", "READY", "VERSION-OF"], [("payment", "1/2", None), ("p-v1", "1/1", "payment")]
    ) == ("NAME      READY   VERSION-OF\npayment   1/2     -\np-v1      1/1     payment\n")


def test_empty_table_has_headers() -> None:
    assert table(["NAME", "GENERATION"], []) == "NAME   GENERATION\n"
