"""The gate: which metric failed, and the exit status `recipe run` ends with."""

from __future__ import annotations

import pytest

from runner.eval.gate import GateSection, gate_failures

METRICS = {
    "loss": {"base": 2.0, "tuned": 1.5, "improvement": 0.5},
    "pass_rate": {"base": 0.2, "tuned": 0.6, "improvement": 0.4},
    "checks": {
        "syntax": {"base": 0.5, "tuned": 0.9, "improvement": 0.4},
        "forbid": {"base": 1.0, "tuned": 0.7, "improvement": -0.3},
    },
}


@pytest.mark.parametrize(
    ("gate", "failures"),
    [
        ({}, []),
        ({"min_pass_rate": 0.6, "max_loss": 1.5, "min_improvement": 0.4}, []),
        ({"min_pass_rate": 0.7}, ["pass rate 0.600 < min_pass_rate 0.7"]),
        ({"min_improvement": 0.5}, ["pass-rate improvement +0.400 < min_improvement 0.5"]),
        ({"max_loss": 1.2}, ["held-out loss 1.5000 > max_loss 1.2"]),
        (
            {"min_loss_improvement": 0.6},
            ["held-out loss improvement +0.5000 < min_loss_improvement 0.6"],
        ),
        (
            {"checks": {"syntax": 0.9, "forbid": 0.8}},
            ["forbid pass rate 0.700 < gate.checks.forbid 0.8"],
        ),
        ({"checks": {"stops": 0.5}}, ["gate.checks.stops: no `stops` check ran"]),
    ],
)
def test_gate_failures_name_the_metric(gate, failures):
    assert gate_failures(GateSection.model_validate(gate), METRICS) == failures


def test_unmeasured_metric_misses_the_gate():
    gate = GateSection(min_loss_improvement=0.1)
    assert gate_failures(gate, {"loss": {"tuned": 1.0}}) == [
        "held-out loss improvement over the base was not measured"
    ]
