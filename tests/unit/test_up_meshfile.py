"""`meshpy up`'s mesh file: what it accepts, and bad files refused with exit 2 naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from meshpy.cli import app
from meshpy.up.meshfile import MeshFileError, load, parse

runner = CliRunner()

SHOP = """\
name: shop
services:
  cart:
    run: python -m meshpy.demo.shop cart
    replicas: 2
    health: /healthz
    env: {GREETING: hi, RETRIES: 3, DEBUG: true}
    depends_on: [payment]
  payment:
    health: /healthz
    env: {REGION: eu}
    versions:
      v1: {run: python -m meshpy.demo.shop payment, replicas: 2}
      v2: {run: [python, -m, meshpy.demo.shop, payment, --fail-rate, "0.02"], restart: never}
resources: [routes/canary.yaml]
"""

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: payment-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: payment}]
  rules:
  - backendRefs:
    - {name: payment-v1, port: 80, weight: 90}
    - {name: payment-v2, port: 80, weight: 10}
"""


def test_a_mesh_file_becomes_replicas_in_dependency_order(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "canary.yaml").write_text(ROUTE)
    (tmp_path / "mesh.yaml").write_text(SHOP)
    mesh, resources = load(tmp_path / "mesh.yaml")
    assert resources == [tmp_path / "routes" / "canary.yaml"]
    assert mesh.waves() == [["payment"], ["cart"]]
    replicas = {r.name: r for r in mesh.replicas()}
    assert list(replicas) == ["payment-v1-1", "payment-v1-2", "payment-v2-1", "cart-1", "cart-2"]
    v2 = replicas["payment-v2-1"]
    assert (v2.service, v2.version, v2.health, v2.restart) == ("payment", "v2", "/healthz", "never")
    assert v2.command == ("python", "-m", "meshpy.demo.shop", "payment", "--fail-rate", "0.02")
    assert v2.env == {"REGION": "eu"}
    cart = replicas["cart-1"]
    assert cart.command == ("python", "-m", "meshpy.demo.shop", "cart")
    assert (cart.version, cart.wave) == (None, 1)
    assert cart.env == {"GREETING": "hi", "RETRIES": "3", "DEBUG": "true"}


def test_defaults() -> None:
    mesh = parse({"services": {"web": {"run": "python app.py"}}})
    (replica,) = mesh.replicas()
    assert (replica.name, replica.health, replica.restart, replica.env) == (
        "web-1",
        "tcp",
        "always",
        {},
    )


def test_the_demo_mesh_file_is_valid() -> None:
    from meshpy import demo

    mesh, resources = load(Path(demo.__file__).parent / "mesh.yaml")
    assert [r.name for r in resources] == ["payment-canary.yaml"]
    versions = [(r.service, r.version) for r in mesh.replicas()]
    assert versions.count(("payment", "v1")) == 2
    assert versions.count(("payment", "v2")) == 1
    assert mesh.waves()[-1] == ["loadgen"]
    (plan,) = mesh.plans()
    assert (plan.service, plan.stable, plan.candidate, plan.steps[0]) == ("payment", "v1", "v2", 10)
    assert plan.thresholds.max_error_rate == pytest.approx(0.01)
    assert mesh.tracing is not None
    assert mesh.tracing.server_env() == {"MESHPY_TRACE_SAMPLE_PERCENT": "20"}
    # The rollout changes the route the demo starts with: the one named after the service.
    route = yaml.safe_load(resources[0].read_text())
    assert route["metadata"]["name"] == "payment"


PAYMENT = "services: {payment: {versions: {v1: {run: x}, v2: {run: y}}}, cart: {run: z}}\n"


def test_rollouts_become_plans_of_the_rollout_module() -> None:
    text = PAYMENT + (
        "rollouts:\n"
        "  - {service: payment, to: v2, from: v1, after: 10s, steps: [10, 50, 100],\n"
        "     interval: 5s, max_error_rate: 1%, max_p99: 250ms, min_requests: 20, max_holds: 1}\n"
    )
    mesh = parse(yaml.safe_load(text))
    (spec,) = mesh.rollouts
    assert (spec.service, spec.to, spec.from_, spec.after) == ("payment", "v2", "v1", 10.0)
    (plan,) = mesh.plans()
    assert (plan.service, plan.stable, plan.candidate) == ("payment", "v1", "v2")
    assert list(plan.steps) == [10, 50, 100]
    assert (plan.interval_s, plan.max_holds, plan.namespace) == (5.0, 1, "default")
    assert plan.thresholds.max_error_rate == pytest.approx(0.01)
    assert plan.thresholds.max_p99 == pytest.approx(0.25)
    assert plan.thresholds.min_requests == 20


def test_rollout_defaults_are_meshpy_rollouts() -> None:
    mesh = parse(yaml.safe_load(PAYMENT + "rollouts: [{service: payment, to: v2}]\n"))
    (plan,) = mesh.plans()
    assert plan.stable == "v1"  # the service's other version
    assert list(plan.steps) == [5, 25, 50, 100]
    assert (plan.interval_s, plan.max_holds) == (30.0, 3)
    assert plan.thresholds.max_error_rate == pytest.approx(0.01)
    assert plan.thresholds.max_p99 == pytest.approx(0.25)
    assert plan.thresholds.min_requests == 10
    assert mesh.rollouts[0].after == 0.0
    # Plain numbers: seconds, a fraction, and steps as the CLI writes them.
    text = PAYMENT + (
        "rollouts: [{service: payment, to: v1, after: 2, interval: 0.5, max_p99: 1,"
        " max_error_rate: 0.05, steps: '20,100'}]\n"
    )
    (plan,) = parse(yaml.safe_load(text)).plans()
    assert (plan.stable, plan.candidate, plan.interval_s, list(plan.steps)) == (
        "v2",
        "v1",
        0.5,
        [20, 100],
    )
    assert plan.thresholds.max_error_rate == pytest.approx(0.05)
    assert parse({"services": {"a": {"run": "x"}}}).rollouts == []


ROLLOUT = PAYMENT + "rollouts:\n  - {service: payment, to: v2, %s}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ROLLOUT % "step: [10]", "rollouts[0].step: unknown field"),
        (ROLLOUT % "steps: [50, 10]", "rollouts[0].steps: [50, 10]: steps must increase"),
        (ROLLOUT % "steps: [0, 100]", "rollouts[0].steps: [0, 100]: each step is a percentage"),
        (ROLLOUT % "steps: [ten]", "rollouts[0].steps: ['ten']: give percentages"),
        (ROLLOUT % "steps: []", "rollouts[0].steps: []: each step is a percentage"),
        (ROLLOUT % "steps: {a: 1}", "rollouts[0].steps: expected a list of percentages"),
        (ROLLOUT % "interval: 0s", "rollouts[0].interval: Input should be greater than 0"),
        (ROLLOUT % "interval: 5 sec", "rollouts[0].interval: invalid duration '5 sec'"),
        (ROLLOUT % "after: -1", "rollouts[0].after: expected a number of seconds or a duration"),
        (ROLLOUT % "max_error_rate: 5", "rollouts[0].max_error_rate: 5: give a percentage"),
        (ROLLOUT % "max_error_rate: lots", "rollouts[0].max_error_rate: 'lots': give a"),
        (ROLLOUT % "max_p99: fast", "rollouts[0].max_p99: invalid duration 'fast'"),
        (ROLLOUT % "min_requests: 0", "rollouts[0].min_requests: Input should be greater"),
        (ROLLOUT % "max_holds: -1", "rollouts[0].max_holds: Input should be greater"),
        (ROLLOUT % "from: v3", "rollouts[0].from: payment has no version 'v3' (it has v1, v2)"),
        (ROLLOUT % "from: v2", "rollouts[0].from: the stable version is the candidate too"),
        (
            PAYMENT + "rollouts: [{service: payment, to: v3}]",
            "rollouts[0].to: payment has no version 'v3' (it has v1, v2)",
        ),
        (PAYMENT + "rollouts: [{to: v2}]", "rollouts[0].service: required"),
        (
            PAYMENT + "rollouts: [{service: shop, to: v2}]",
            "rollouts[0].service: no service 'shop' here",
        ),
        (
            PAYMENT + "rollouts: [{service: cart, to: v2}]",
            "rollouts[0].service: cart has no versions",
        ),
        (
            "services: {p: {versions: {v1: {run: x}, v2: {run: y}, v3: {run: z}}}}\n"
            "rollouts: [{service: p, to: v3}]",
            "rollouts[0]: give from: p has 2 version(s) besides v3 (v1, v2)",
        ),
        (
            PAYMENT + "rollouts: [{service: payment, to: v2}, {service: payment, to: v1}]",
            "rollouts[1].service: payment already has a rollout (rollouts[0])",
        ),
        (PAYMENT + "rollouts: {service: payment}", "rollouts: Input should be a valid list"),
    ],
)
def test_bad_rollouts_exit_2_naming_the_field(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    result = runner.invoke(app, ["up", str(tmp_path / "mesh.yaml")], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {tmp_path / 'mesh.yaml'}: "), result.output
    assert expected in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("services: {cart: {run: x, replicas: two}}", "services.cart.replicas: Input should be"),
        ("services: {cart: {run: x, replica: 2}}", "services.cart.replica: unknown field"),
        ("services: {cart: {run: x}}\nextra: 1", "mesh.yaml: extra: unknown field"),
        ("services: {cart: {replicas: 2}}", "services.cart: give run"),
        ("services: {Cart: {run: x}}", "services.Cart: expected lowercase letters"),
        (
            "services: {cart: {run: x, versions: {v1: {run: y}}}}",
            "services.cart: give run and replicas, or versions, not both",
        ),
        (
            "services: {p: {versions: {v1: {run: y, replicas: -1}}}}",
            "services.p.versions.v1.replicas: Input should be greater than or equal to 0",
        ),
        ("services: {p: {versions: {v1: {run: y, port: 1}}}}", "services.p.versions.v1.port"),
        ("services: {p: {run: x, health: http}}", "services.p.health: expected an HTTP path"),
        ("services: {p: {run: ''}}", "services.p.run: the command is empty"),
        ("services: {p: {run: 'a \"b'}}", "services.p.run: cannot split the command line"),
        ("services: {p: {run: x, env: {A: [1]}}}", "services.p.env: A: expected a string"),
        ("services: {p: {run: x, restart: sometimes}}", "services.p.restart: Input should be"),
        ("services: {p: {run: x, depends_on: [q]}}", "services.p.depends_on[0]: no service 'q'"),
        (
            "services: {a: {run: x, depends_on: [b]}, b: {run: x, depends_on: [a]}}",
            "services.a.depends_on: a dependency cycle: a -> b -> a",
        ),
        (
            "services: {p: {versions: {v2: {run: x}}}, p-v2: {run: y}}",
            "services.p.versions.v2: 'p-v2' is also a service",
        ),
        ("services: {}", "services: name at least one service"),
        ("name: shop", "services: required"),
        ("- a\n- b", "expected a mapping with services, not a list"),
        ("", "expected a mapping with services, not empty"),
        ("services: {a: {run: x}, a: {run: y}}", "duplicate key 'a'"),
        ("services: [", "line 2, column 1"),
        ("services: {p: {run: x}}\nresources: [absent.yaml]", "resources[0]: no such file"),
        (
            "services: {p: {run: x}}\ntracing: {sample_percent: 101}",
            "tracing.sample_percent: Input should be less than or equal to 100",
        ),
        ("services: {p: {run: x}}\ntracing: {ratio: 1}", "tracing.ratio: unknown field"),
    ],
)
def test_bad_mesh_files_exit_2_naming_the_field(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    result = runner.invoke(app, ["up", str(tmp_path / "mesh.yaml")], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {tmp_path / 'mesh.yaml'}: "), result.output
    assert expected in result.output


def test_a_bad_resource_file_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "route.yaml").write_text(ROUTE.replace("weight: 10", "weight: lots"))
    (tmp_path / "mesh.yaml").write_text("services: {p: {run: x}}\nresources: [route.yaml]\n")
    result = runner.invoke(app, ["up", str(tmp_path / "mesh.yaml")], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert "resources[0]" in result.output
    assert "route.yaml: [0].spec.rules[0].backendRefs[1].weight: must be" in result.output


def test_errors_are_mesh_file_errors() -> None:
    with pytest.raises(MeshFileError) as caught:
        parse({"services": {"a": {"run": "x", "replicas": 100}}}, "m.yaml")
    assert caught.value.problems[0][0] == "services.a.replicas"
    assert str(caught.value).startswith("m.yaml: services.a.replicas: ")


def test_a_missing_mesh_file_exits_2_from_the_real_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meshpy", "up"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: mesh.yaml: No such file or directory\n"
    assert not (tmp_path / ".meshpy").exists()  # nothing was started


def test_the_readme_mesh_file_is_valid() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### The mesh file") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    mesh = parse(yaml.safe_load(block))
    assert [r.name for r in mesh.replicas()] == [
        "payment-v1-1",
        "payment-v1-2",
        "payment-v2-1",
        "cart-1",
        "cart-2",
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["up", "--help"], ["MESH_FILE", "--listen", "--duration", "--ready-timeout", "SIGTERM"]),
        (["demo", "--help"], ["--duration", "--listen", "canary", "rollout"]),
    ],
)
def test_help(argv: list[str], expected: list[str]) -> None:
    result = runner.invoke(app, argv, terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output


def test_the_summary_lists_the_slowest_traces() -> None:
    from meshpy.up.traces import trace_lines

    assert trace_lines([]) == []
    trace = {"trace_id": "ab" * 16, "duration_ns": 60_200_000, "span_count": 6}
    lines = trace_lines([{**trace, "services": ["cart", "payment"], "error": True}])
    assert lines[1] == f"  {'ab' * 16}     60.2ms  6 spans across cart, payment, failed"
