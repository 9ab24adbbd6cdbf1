"""The ready file of `meshpy server --ready-file`: written whole, read back, removed by its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshpy.readyfile import Ready, read_ready, remove_ready, write_ready


def test_written_then_read_back_with_nothing_left_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    write_ready(path, Ready("http://127.0.0.1:41234", 4242))
    assert path.read_text() == '{"url": "http://127.0.0.1:41234", "pid": 4242}\n'
    assert read_ready(path) == Ready("http://127.0.0.1:41234", 4242)
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]


def test_a_new_file_replaces_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    write_ready(path, Ready("http://127.0.0.1:1", 1))
    write_ready(path, Ready("http://127.0.0.1:2", 2))
    assert read_ready(path) == Ready("http://127.0.0.1:2", 2)


@pytest.mark.parametrize(
    "text",
    [
        "",
        '{"url": "http://127.0.0.1:1"',
        "[]",
        '{"url": "http://127.0.0.1:1"}',
        '{"url": 1, "pid": 1}',
        '{"url": "http://127.0.0.1:1", "pid": "1"}',
        '{"url": "http://127.0.0.1:1", "pid": true}',
    ],
)
def test_anything_but_a_whole_ready_file_reads_as_none(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ready.json"
    path.write_text(text)
    assert read_ready(path) is None


def test_no_file_reads_as_none(tmp_path: Path) -> None:
    assert read_ready(tmp_path / "ready.json") is None


def test_a_failed_write_raises_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "ready.json"
    with pytest.raises(FileNotFoundError):
        write_ready(path, Ready("http://127.0.0.1:1", 1))
    assert list(tmp_path.iterdir()) == []


def test_only_the_server_that_wrote_it_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    write_ready(path, Ready("http://127.0.0.1:2", 2))
    remove_ready(path, 1)  # an older server stopping after a newer one started
    assert read_ready(path) == Ready("http://127.0.0.1:2", 2)
    remove_ready(path, 2)
    assert not path.exists()
    remove_ready(path, 2)  # already gone: nothing to do
