"""`meshpy server` with a CA it cannot load stops at once, with one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshpy.api.server import serve
from meshpy.ca.authority import Authority
from meshpy.settings import Settings


def test_server_with_a_broken_ca_stops_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tmp_path / "home", listen="127.0.0.1:0")
    Authority.open(settings.ca_dir, "meshpy.local")
    (settings.ca_dir / "g1" / "root.crt").write_text("damaged\n")
    assert serve(settings) == 1
    err = capsys.readouterr().err
    assert err.endswith(
        f"meshpy server: error: {settings.ca_dir}/g1/root.crt: not a PEM certificate\n"
    )
