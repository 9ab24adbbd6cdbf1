"""The admin CLI against a real `meshpy server` process: exact output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from meshpy.cli import app
from meshpy.registry import migrations
from tests.integration.conftest import StartServer
from tests.integration.serverproc import ServerProcess, server_env

HEAD = migrations.head()
"""The schema revision a new database is upgraded to."""

ROUTES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: payment-canary
spec:
  parentRefs: [{group: "", kind: Service, name: payment}]
  rules:
  - backendRefs:
    - {name: payment-v1, port: 80, weight: 90}
    - {name: payment-v2, port: 80, weight: 10}
---
apiVersion: policy.meshpy.io/v1alpha1
kind: BackendPolicy
metadata:
  name: payment-lb
spec:
  targetRefs: [{group: "", kind: Service, name: payment}]
"""


class Cli:
    """Runs meshpy commands in-process with the server's MESHPY_HOME."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        env = server_env(self.server.home)
        result = self.runner.invoke(app, list(args), env=env, input=stdin, terminal_width=200)
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result


@pytest.fixture
def server(start_server: StartServer, tmp_path: Path) -> ServerProcess:
    return start_server(tmp_path / "home")


@pytest.fixture
def cli(server: ServerProcess) -> Cli:
    return Cli(server)


def _register(server: ServerProcess, token: str, service: str, **body: object) -> str:
    client = server.client(token)
    response = client.post(
        f"/api/v1/namespaces/default/services/{service}/instances",
        json={"address": "10.0.0.1", "inbound_port": 15006, **body},
    )
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["id"]
    return instance_id


def test_server_announces_itself(server: ServerProcess) -> None:
    log = server.log()
    home = server.home.resolve()
    assert f"meshpy server: listening on {server.url}\n" in log
    assert f"meshpy server: admin token in {home}/admin-token\n" in log
    assert f"meshpy server: registry sqlite:///{home}/meshpy.db\n" in log
    assert f"database schema upgraded from empty to {HEAD}" in log
    assert (server.home / "server-url").read_text() == server.url + "\n"


def test_token_service_list_apply_get_describe_delete(cli: Cli, server: ServerProcess) -> None:
    created = cli("token", "create", "--service", "payment")
    token = created.stdout.strip()
    assert token.startswith("mpj_")
    assert created.stderr.startswith("join token ")
    assert "for default/payment, valid until " in created.stderr

    v1 = _register(server, token, "payment", version="v1", address="10.0.0.1")
    _register(server, token, "payment", version="v1", address="10.0.0.2")
    server.client(token).put(
        f"/api/v1/namespaces/default/services/payment/instances/{v1}/lease",
        json={"health": "passing"},
    )
    assert cli("service", "list").stdout == (
        "NAMESPACE   NAME         PROTOCOL   READY   VERSION-OF\n"
        "default     payment      http       1/2     -\n"
        "default     payment-v1   http       1/2     payment\n"
    )

    routes = server.home.parent / "routes.yaml"
    routes.write_text(ROUTES)
    applied = cli("apply", "-f", str(routes))
    assert applied.stdout == "httproute/payment-canary created\nbackendpolicy/payment-lb created\n"
    assert cli("apply", "-f", str(routes)).stdout == (
        "httproute/payment-canary unchanged\nbackendpolicy/payment-lb unchanged\n"
    )
    assert cli("get", "httproutes").stdout == (
        "NAME             GENERATION   ACCEPTED   RESOLVED-REFS\n"
        "payment-canary   1            True       False\n"
    )
    assert cli("get", "bp", "-A").stdout == (
        "NAMESPACE   NAME         GENERATION   ACCEPTED\n"
        "default     payment-lb   1            True\n"
    )
    doc = json.loads(cli("get", "httproute", "payment-canary", "-o", "json").stdout)
    assert doc["metadata"]["generation"] == 1
    as_yaml = yaml.safe_load(cli("get", "hr", "payment-canary", "-o", "yaml").stdout)
    assert as_yaml == doc

    described = cli("describe", "httproute", "payment-canary").stdout
    assert described.startswith(
        "Kind:        HTTPRoute (gateway.networking.k8s.io/v1)\n"
        "Name:        payment-canary\n"
        "Namespace:   default\n"
        "Generation:  1\n"
    )
    assert described.endswith(
        "Status:\n"
        "  Parent Service default/payment:\n"
        "    TYPE           STATUS   REASON            MESSAGE\n"
        "    Accepted       True     Accepted          attached to Service default/payment\n"
        "    ResolvedRefs   False    BackendNotFound   "
        "spec.rules[0].backendRefs[1]: Service default/payment-v2 does not exist\n"
    )

    _register(server, token, "payment", version="v2", address="10.0.0.3")
    assert cli("get", "httproutes").stdout == (
        "NAME             GENERATION   ACCEPTED   RESOLVED-REFS\n"
        "payment-canary   1            True       True\n"
    )
    service = cli("describe", "svc", "payment-v2").stdout
    lines = service.splitlines()
    assert lines[:4] == [
        "Name:        payment-v2",
        "Namespace:   default",
        "Protocol:    http",
        "Version of:  payment (version v2)",
    ]
    assert lines[-2].split() == ["ID", "ADDRESS", "APP-PORT", "VERSION", "ZONE", "STATE"]
    assert lines[-1].split()[1:] == ["10.0.0.3:15006", "-", "v2", "-", "starting"]

    assert (
        cli("delete", "httproute", "payment-canary").stdout == "httproute/payment-canary deleted\n"
    )
    missing = cli("delete", "httproute", "payment-canary", code=1)
    assert missing.stdout == ""
    assert missing.stderr == "error: HTTPRoute default/payment-canary not found\n"
    assert cli("get", "httproutes").stdout == "NAME   GENERATION   ACCEPTED\n"


def test_apply_reports_bad_documents_by_file(cli: Cli, server: ServerProcess) -> None:
    folder = server.home.parent / "resources"
    folder.mkdir()
    (folder / "a.yaml").write_text(ROUTES)
    (folder / "b.yaml").write_text(ROUTES.replace("weight: 10", "weight: -10"))
    result = cli("apply", "-f", str(folder), code=1)
    assert result.stdout == ""
    assert result.stderr == (
        "error: Invalid resource:\n"
        f"  {folder}/b.yaml[0] spec.rules[0].backendRefs[1].weight: must be at least 0, not -10\n"
    )
    assert cli("get", "httproutes").stdout == "NAME   GENERATION   ACCEPTED\n"  # nothing applied

    broken = cli("apply", "-f", "-", stdin="kind: [unclosed\n", code=1)
    assert broken.stderr.startswith("error: <stdin>: line 2, column 1: ")
    from_stdin = cli("apply", "-f", "-", "-n", "shop", stdin=ROUTES)
    assert (
        from_stdin.stdout == "httproute/payment-canary created\nbackendpolicy/payment-lb created\n"
    )
    assert cli("get", "hr", "-n", "shop", "-o", "json").stdout.count('"payment-canary"') == 1


def test_usage_errors_and_unreachable_server(cli: Cli, server: ServerProcess) -> None:
    unknown = cli("get", "gateways", code=2)
    assert unknown.stderr.startswith("error: unknown kind 'gateways'; use one of ")
    cli("token", "create", code=2)  # --service is required
    unauthorized = cli("service", "list", "--token", "mpa_wrong", code=1)
    assert unauthorized.stderr == "error: the token is not valid\n"
    down = cli("service", "list", "--server", "http://127.0.0.1:9", code=1)
    assert down.stderr.startswith("error: cannot reach the control plane at http://127.0.0.1:9")
    assert cli("service", "list", "-o", "json").stdout == '{\n  "items": []\n}\n'


def test_proxy_status_shows_sync_and_exits_1_until_synced(cli: Cli, server: ServerProcess) -> None:
    cart = _register(server, server.admin_token, "cart")
    not_sent = cli("proxy", "status", code=1)
    assert not_sent.stdout == (
        "NAMESPACE   SERVICE   INSTANCE" + " " * 31 + "STATUS     ACKED   CURRENT   ERROR\n"
        f"default     cart      {cart}   NOT SENT   -       {_current(cli):<7}   -\n"
    )
    got = server.client().get(f"/api/v1/proxies/{cart}/config")
    ack = {"version": got.json()["version"], "etag": got.headers["etag"].strip('"')}
    assert server.client().put(f"/api/v1/proxies/{cart}/ack", json=ack).status_code == 204
    synced = json.loads(cli("proxy", "status", "-o", "json").stdout)
    assert [(p["instance"], p["status"], p["acked_version"]) for p in synced] == [
        (cart, "SYNCED", ack["version"])
    ]


def _current(cli: Cli) -> int:
    listed = json.loads(cli("proxy", "status", "-o", "json", code=1).stdout)
    current: int = listed[0]["current_version"]
    return current
