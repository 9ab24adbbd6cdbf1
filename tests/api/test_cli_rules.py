"""``meshpy script run`` and ``meshpy analyze`` against a live server (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from meshpy import rules
from meshpy.cli import app
from meshpy.resources import parse
from tests.api.live import LiveServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scripts"
runner = CliRunner()


def meshpy(api: LiveServer, *argv: str) -> tuple[int, str, str]:
    options = ["--server", api.url, "--token", api.admin_token]
    split = argv.index("--") if "--" in argv else len(argv)
    result = runner.invoke(app, [*argv[:split], *options, *argv[split:]])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def stored(api: LiveServer) -> dict[str, list[str]]:
    found = {}
    for plural in ("httproutes", "backendpolicies", "authorizationpolicies"):
        items = api.admin.get(f"/api/v1/{plural}").json()["items"]
        found[plural] = [d["metadata"]["name"] for d in items]
    return found


CANARY_RESOURCES = [
    rules.retry(
        rules.canary("payment", stable="v1", candidate="v2", weight=25), attempts=2, codes=[503]
    ),
    rules.load_balancer("payment", "least_request"),
    rules.allow("payment", from_=["cart", "checkout"], methods=["POST"]),
]


def test_script_dry_run_prints_yaml_and_applies_nothing(api: LiveServer) -> None:
    code, out, err = meshpy(
        api, "script", "run", str(EXAMPLES / "canary.py"), "--dry-run", "--", "25"
    )
    assert code == 0, err
    assert out.startswith("---\napiVersion: gateway.networking.k8s.io/v1\n")
    documents = list(yaml.safe_load_all(out))
    assert [parse(d) for d in documents] == [
        parse({**r.to_document(), "metadata": {"name": r.name, "namespace": "default"}})
        for r in CANARY_RESOURCES
    ]
    assert "3 resource(s) would be applied; nothing was sent" in err
    assert stored(api) == {"httproutes": [], "backendpolicies": [], "authorizationpolicies": []}


def test_script_run_applies(api: LiveServer) -> None:
    code, out, err = meshpy(api, "script", "run", str(EXAMPLES / "canary.py"), "--", "25")
    assert code == 0, err
    assert out == (
        "httproute/payment created\n"
        "backendpolicy/payment created\n"
        "authorizationpolicy/payment-allow created\n"
    )
    assert stored(api) == {
        "httproutes": ["payment"],
        "backendpolicies": ["payment"],
        "authorizationpolicies": ["payment-allow"],
    }
    route = api.admin.get("/api/v1/namespaces/default/httproutes/payment").json()
    assert route["spec"] == CANARY_RESOURCES[0].spec_dict()


def test_ab_test_example_shows_the_change_then_applies(api: LiveServer) -> None:
    code, out, err = meshpy(api, "script", "run", str(EXAMPLES / "ab_test.py"), "--dry-run")
    assert code == 0, err
    (document,) = yaml.safe_load_all(out)
    assert [r["backendRefs"][0]["name"] for r in document["spec"]["rules"]] == [
        "cart-v2",
        "cart-v1",
    ]

    code, out, err = meshpy(api, "script", "run", str(EXAMPLES / "ab_test.py"))
    assert code == 0, err
    assert out.startswith("HTTPRoute default/cart: created\n--- /dev/null\n")
    assert out.endswith("httproute/cart created\n")
    code, out, err = meshpy(api, "script", "run", str(EXAMPLES / "ab_test.py"))
    assert out == "HTTPRoute default/cart: unchanged\nhttproute/cart unchanged\n"


def test_script_failures(api: LiveServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from meshpy.rules import Client, split\n"
        "Client().apply(split('cart', {'v1': 50, 'v2': -5}))\n"
    )
    code, _, err = meshpy(api, "script", "run", str(bad))
    assert code == 1
    assert "invalid resource: spec.rules[0].backendRefs[1].weight: must be at least 0" in err

    leaving = tmp_path / "exit.py"
    leaving.write_text("import sys\nsys.exit(3)\n")
    assert meshpy(api, "script", "run", str(leaving))[0] == 3
    assert meshpy(api, "script", "run", str(tmp_path / "none.py"))[0] == 1
    assert stored(api)["httproutes"] == []


BAD_FILE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart}
spec:
  parentRefs: [{kind: Service, name: cart}]
  rules:
    - backendRefs: [{name: cart-v1, weight: 0}, {name: cart-v2, weight: 0}]
"""


def test_analyze_files_exits_1_and_names_the_code(api: LiveServer, tmp_path: Path) -> None:
    api.register("cart", version="v1")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FILE)
    code, out, err = meshpy(api, "analyze", "-f", str(bad))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["CODE", "SEVERITY", "RESOURCE", "MESSAGE"]
    assert [line.split()[:2] for line in lines[1:]] == [["MP001", "error"], ["MP002", "error"]]
    assert "backend Service default/cart-v2 does not exist" in lines[1]
    assert "1 resource(s) checked: 2 error(s), 0 warning(s)" in err

    code, out, _ = meshpy(api, "analyze", "-f", str(bad), "--offline", "-o", "json")
    assert code == 1
    assert [f["code"] for f in yaml.safe_load(out)["findings"]] == ["MP002"]

    warned = tmp_path / "warned.yaml"
    warned.write_text(
        BAD_FILE.replace(
            "    - backendRefs: [{name: cart-v1, weight: 0}, {name: cart-v2, weight: 0}]",
            "    - matches: [{path: {value: /api}}]\n      backendRefs: [{name: cart-v1}]",
        )
    )
    code, out, _ = meshpy(api, "analyze", "-f", str(warned), "-o", "yaml")
    assert code == 0
    assert [f["code"] for f in yaml.safe_load(out)["findings"]] == ["MP004"]

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(BAD_FILE.replace("weight: 0}", 'weight: "0"}'))
    code, out, _ = meshpy(api, "analyze", "-f", str(invalid), "--offline")
    assert code == 1
    assert out.splitlines()[1].split()[:3] == ["MP000", "error", f"{invalid}[0]"]


def test_analyze_in_place(api: LiveServer) -> None:
    api.register("cart", version="v1")
    with rules.Client(api.url, api.admin_token) as mesh:
        mesh.apply(rules.route("cart", "v1"))
        assert meshpy(api, "analyze")[0] == 0
        mesh.apply(rules.split("cart", {"v1": 90, "v2": 10}), rules.load_balancer("gone"))
    code, out, err = meshpy(api, "analyze", "-o", "json")
    assert code == 1, err
    found = [(f["code"], f["resource"]) for f in yaml.safe_load(out)["findings"]]
    assert found == [("MP001", "HTTPRoute default/cart"), ("MP005", "BackendPolicy default/gone")]
