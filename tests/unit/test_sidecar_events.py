"""A sidecar's events file: what is written is read back whole, once, and nothing else is."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from meshpy.sidecar.events import EventLog, EventReader, read_events


def test_events_are_read_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.new_events() == []  # no file yet
    log = EventLog(str(path))
    log.emit("registered", instance="i-1", namespace="default", service="cart")
    log.emit("ready")
    assert reader.new_events() == [
        {"event": "registered", "instance": "i-1", "namespace": "default", "service": "cart"},
        {"event": "ready"},
    ]
    assert reader.new_events() == []
    log.emit("app_exited", code=1, restarting=True)
    assert reader.new_events() == [{"event": "app_exited", "code": 1, "restarting": True}]


def test_a_line_being_written_waits_and_junk_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    path.write_bytes(b'{"event": "ready"}\nnot json\n[1]\n{"no_event": 1}\n{"event": "not_r')
    assert reader.new_events() == [{"event": "ready"}]
    with path.open("ab") as out:
        out.write(b'eady"}\n')
    assert reader.new_events() == [{"event": "not_ready"}]


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(str(path))

    def emit(n: int) -> None:
        for i in range(200):
            log.emit("addresses", addresses={"admin": f"127.0.0.1:{n}{i}"})

    threads = [threading.Thread(target=emit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(read_events(path)) == 800


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    EventLog(None).emit("ready")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_file_costs_the_event_not_the_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog(str(tmp_path / "gone" / "events.jsonl"))
    log.emit("ready")  # no exception
    assert "cannot write the ready event" in caplog.text
