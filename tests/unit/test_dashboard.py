"""dashboards/meshpy-mesh.json: a well-formed Grafana dashboard whose every query names only
metrics that a running proxy exports."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from meshpy import _core

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "meshpy-mesh.json"
PANEL_TYPES = {"row", "stat", "timeseries", "table", "gauge", "bargauge", "text"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_WORD = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
_VARIABLE = re.compile(r"\$\{?(\w+)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its words that are not functions,
    aggregations, keywords, label names (matchers and groupings) or parts of strings."""
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = _GROUPING.sub(" ", expr)
    names = set()
    for match in _WORD.finditer(expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def test_metric_names_finds_the_selected_metrics_only() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, source_service) "
        '(rate(a_bucket{destination_service=~"$service", code!~"5.."}[$__rate_interval])))'
        " / on (x) group_left sum(b_total offset 5m) or vector(0) and c > bool 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert metric_names("sum(rate(x_count[1m])) without (instance)") == {"x_count"}


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def _proxy(listener: dict[str, Any], endpoint: str) -> _core.Proxy:
    core = _core.Proxy(json.dumps({"workers": 1}))
    listener = {"address": "127.0.0.1:0", "protocol": "http", "cluster": "c", **listener}
    cluster = {"name": "c", "endpoints": [endpoint]}
    core.apply(json.dumps({"listeners": [listener], "clusters": [cluster]}))
    core.start()
    return core


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    """Every metric name two real proxies export once a request went out through one
    (outbound) and in through the other (inbound) to an app: the sample names a scrape
    sees, derived from the ``# TYPE`` lines, and the samples themselves."""
    app = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    inbound = _proxy({"name": "inbound"}, f"127.0.0.1:{app.server_address[1]}")
    outbound = _proxy({"name": "outbound", "direction": "outbound"}, inbound.addresses()["inbound"])
    try:
        url = f"http://{outbound.addresses()['outbound']}/"
        urllib.request.urlopen(url, timeout=5).read()
        names: set[str] = set()
        for core in (inbound, outbound):
            for line in core.metrics().splitlines():
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split()
                    names.update(_scraped(name, kind))
                elif line and not line.startswith("#"):
                    names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
        yield names
    finally:
        outbound.shutdown(1.0)
        inbound.shutdown(1.0)
        app.shutdown()
        app.server_close()


def _scraped(name: str, kind: str) -> set[str]:
    """The sample names of a family as Prometheus stores them."""
    if kind == "counter":
        return {name if name.endswith("_total") else f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    if kind == "summary":
        return {name, f"{name}_count", f"{name}_sum"}
    return {name}


@cache
def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in _dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row keeps its panels
    return panels


def _queries() -> list[tuple[str, str]]:
    """``(where, PromQL)`` of every panel target."""
    return [
        (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
        for panel in _panels()
        for target in panel.get("targets", [])
    ]


def _variables() -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = _dashboard()["templating"]["list"]
    return variables


def test_the_dashboard_is_well_formed_grafana_json() -> None:
    dashboard = _dashboard()
    assert isinstance(dashboard["title"], str)
    assert dashboard["title"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    panels = _panels()
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(set(ids)) == len(ids), f"panel ids repeat: {ids}"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        where = f"panel {panel['id']} {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        assert panel["title"], where
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy"), where
        assert min(grid.values()) >= 0, where
        assert grid["w"] > 0, where
        assert grid["h"] > 0, where
        assert grid["x"] + grid["w"] <= 24, f"{where} is wider than the dashboard"
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{where} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        targets = panel["targets"]
        assert targets, f"{where} has no targets"
        refs = [target["refId"] for target in targets]
        assert len(set(refs)) == len(refs), where
        for target in targets:
            assert target["expr"].strip(), where
            assert target["datasource"] == panel["datasource"], where


def test_the_template_variables_are_defined_and_used() -> None:
    variables = {variable["name"]: variable for variable in _variables()}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "service"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"], name
        assert variables[name]["allValue"] == ".*", name
    used: set[str] = set()
    for where, expr in _queries():
        for name in _VARIABLE.findall(expr):
            assert name in variables or name in GRAFANA_VARIABLES, f"{where}: ${name}"
            used.add(name)
    for variable in _variables():
        for name in _VARIABLE.findall(variable.get("definition", "")):
            assert name in variables, f"variable {variable['name']}: ${name}"
    assert {"namespace", "service", "__rate_interval"} <= used


def test_every_query_names_metrics_the_proxy_exports(exported: set[str]) -> None:
    # The edge histograms appeared once the request went through: the test proxies are real.
    assert {
        "http_server_request_duration_seconds_bucket",
        "http_client_request_duration_seconds_count",
        "meshpy_requests_total",
    } <= exported
    used: set[str] = set()
    for where, expr in _queries():
        names = metric_names(expr)
        assert names, f"{where} selects no metric: {expr}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported"
        used |= names
    for variable in _variables():
        if variable["type"] == "query":
            [name] = _LABEL_VALUES.findall(variable["definition"])
            assert name in exported, f"variable {variable['name']}: {name} not exported"
            assert variable["query"]["query"] == variable["definition"]
    assert {
        "http_server_request_duration_seconds_count",
        "http_server_request_duration_seconds_bucket",
        "http_client_request_duration_seconds_count",
        "http_client_request_duration_seconds_bucket",
    } <= used


def test_the_dashboard_shows_golden_metrics_per_service_and_edge() -> None:
    exprs = [expr for _, expr in _queries()]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            f"histogram_quantile({quantile}," in expr and "_bucket{" in expr for expr in exprs
        ), quantile
    quantiles = [expr for expr in exprs if expr.startswith("histogram_quantile")]
    assert all("rate(" in expr and "by (le" in expr for expr in quantiles), quantiles
    groupings = {g for expr in exprs for g in re.findall(r"by \(([^)]*)\)", expr)}
    assert any("source_service" in g and "destination_service" in g for g in groupings)
    assert any("destination_service" in g and "source_service" not in g for g in groupings)
