"""``meshpy explain``: a bad question is exit 2 before anything is sent, and the text."""

from __future__ import annotations

from dataclasses import replace

import pytest
from typer.testing import CliRunner

from meshpy.cli import app
from meshpy.cli.explanation import explanation_text
from meshpy.explain import ExplainRequest, explain
from meshpy.snapshot import MeshIdentity
from tests.unit.snapshots import SHOP, backend_policy, to_payment
from tests.unit.test_explain import CANARY, authz

runner = CliRunner()

# Nothing listens here: a question that reached the server would fail with exit 1.
NOWHERE = ["--server", "http://127.0.0.1:9", "--token", "t"]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["--from", "Cart", "--to", "payment", "GET", "/"],
            "error: --from: 'Cart' is not a valid name: lower-case letters, "
            "digits and '-', starting and ending alphanumeric",
        ),
        (
            ["--from", "cart", "--to", "payment.Shop", "GET", "/"],
            "error: --to namespace: 'Shop' is not a valid name: lower-case "
            "letters, digits and '-', starting and ending alphanumeric",
        ),
        (
            ["--from", "cart", "--to", "payment", "GET", "charge"],
            "error: PATH: 'charge' is not a request path (it starts with '/' and has no spaces)",
        ),
        (
            ["--from", "cart", "--to", "payment", "G T", "/"],
            "error: METHOD: 'G T' is not an HTTP method (a token, such as GET)",
        ),
        (
            ["--from", "cart", "--to", "payment", "-H", "x-a:1", "-H", "x-beta", "GET", "/"],
            "error: -H #2: 'x-beta' is not NAME:VALUE",
        ),
        (
            ["--from", "cart", "--to", "payment", "-H", "bad name:1", "GET", "/"],
            "error: -H #1: 'bad name' is not a valid HTTP header name",
        ),
    ],
)
def test_a_bad_question_is_exit_2_and_names_what_is_wrong(argv: list[str], error: str) -> None:
    result = runner.invoke(app, ["explain", *argv, *NOWHERE])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(error), result.output
    assert "Traceback" not in result.output


def test_missing_arguments_are_usage_errors() -> None:
    result = runner.invoke(app, ["explain", "--to", "payment", "GET", "/"])
    assert result.exit_code == 2
    assert "Missing option '--from'" in result.output


def test_an_unreachable_control_plane_is_exit_1() -> None:
    result = runner.invoke(
        app, ["explain", "--from", "cart", "--to", "payment", "GET", "/", *NOWHERE]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach the control plane at http://127.0.0.1:9")


def test_the_text_names_rules_backends_policies_and_decisions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    state = replace(
        SHOP,
        routes=(CANARY,),
        identity=MeshIdentity(trust_domain="meshpy.local"),
        backend_policies=(backend_policy("payment", "round_robin"),),
        authorization_policies=(
            authz(
                "cart-gets",
                "payment-v2",
                "ALLOW",
                [
                    {
                        "sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}],
                        "to": [{"methods": ["GET"]}],
                    }
                ],
            ),
        ),
    )
    question = {
        "source": {"service": "cart"},
        "destination": {"service": "payment"},
        "method": "GET",
        "path": "/charge?dry=1",
        "headers": [{"name": "x-beta", "value": "2"}],
    }
    text = explanation_text(explain(state, ExplainRequest.model_validate(question)).model_dump())
    cart = "spiffe://meshpy.local/ns/default/sa/cart"
    policy = (
        "default/payment-round-robin: lb round_robin; "
        "retry_budget percent 20, min_retries_per_second 10"
    )
    route = "payment.default: HTTPRoute default/payment rule 2, match 0: path PathPrefix /"
    assert text.splitlines() == [
        f"GET /charge?dry=1 -H x-beta:2 from default/cart ({cart}) to payment",
        f"route        {route}",
        "passed over  HTTPRoute default/payment rule 0, match 0: fails method POST",
        "passed over  HTTPRoute default/payment rule 1, match 0: fails header x-beta = 1",
        "timeouts     request 2s, each try 500ms",
        "retries      3 on 502, 503, backoff 25ms",
        "",
        "BACKEND             WEIGHT  SHARE  SENT AS  ENDPOINTS  BACKENDPOLICY",
        f"payment-v1.default  90      90%    /charge  2          {policy}",
        f"payment-v2.default  10      10%    /charge  1          {policy}",
        "",
        "BACKEND             VERSION  INSTANCES  AUTHZ  ANSWER           WHY",
        "payment-v1.default  v1       2          ALLOW  the app answers  no AuthorizationPolicy "
        "applies to these instances and the mesh default, all-unauthenticated, allows everyone",
        "payment-v2.default  v2       1          ALLOW  the app answers  rule 0 of ALLOW policy "
        f"default/cart-gets (from {cart} to GET any path) matches: it allows the request",
    ]


def test_a_refusal_by_the_callers_sidecar_is_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    only = to_payment(
        {
            "matches": [{"path": {"type": "Exact", "value": "/a"}}],
            "backendRefs": [{"name": "payment"}],
        }
    )
    question = {
        "source": {"service": "cart"},
        "destination": {"service": "payment"},
        "method": "GET",
        "path": "/b",
    }
    answer = explain(replace(SHOP, routes=(only,)), ExplainRequest.model_validate(question))
    assert explanation_text(answer.model_dump()).splitlines() == [
        "GET /b from default/cart (plaintext, no identity) to payment",
        "route        payment.default: no rule matches",
        "passed over  HTTPRoute default/r rule 0, match 0: fails path Exact /a",
        'answer       404 no_route from the caller\'s sidecar: no route: no rule of "payment" '
        "matches GET /b",
    ]


def test_patterns_are_shown_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    regex = to_payment(
        {
            "matches": [
                {"headers": [{"name": "x-user", "value": "[/a-z]+", "type": "RegularExpression"}]}
            ],
            "backendRefs": [{"name": "payment-v2"}],
        },
        {"backendRefs": [{"name": "payment-v1"}]},
    )
    question = {
        "source": {"service": "cart"},
        "destination": {"service": "payment"},
        "method": "GET",
        "path": "/[x]",
    }
    answer = explain(replace(SHOP, routes=(regex,)), ExplainRequest.model_validate(question))
    lines = explanation_text(answer.model_dump()).splitlines()
    assert lines[0] == "GET /[x] from default/cart (plaintext, no identity) to payment"
    assert lines[2] == (
        "passed over  HTTPRoute default/r rule 0, match 0: fails header x-user ~ [/a-z]+"
    )
