"""The post-check reads `istioctl ztunnel-config workloads` for PROTOCOL HBONE.

The command here is a real process (python printing a recorded table) run by the real Runner:
no ztunnel answers in these tests, and the installer never fakes the answer itself.
"""

import sys

import pytest

from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.plans.install import hbone_problem

HEADER = "NAMESPACE POD NAME                    ADDRESS     NODE   WAYPOINT PROTOCOL"
TABLE = "\n".join([
    HEADER,
    "shop      cart-5d9f7c9c8-abcde        10.0.1.5    node-a None     HBONE",
    "shop      web-7f6d5c-xyz12            10.0.1.6    node-b None     HBONE",
    "pay       api-6c8b9d-qwert            10.0.2.7    node-a None     TCP",
    "pay       worker-6c8b9d-asdfg         10.0.2.8    node-b None     HBONE",
])


def test_verdicts():
    lines = TABLE.splitlines()
    assert hbone_problem(lines, "shop") == ""
    assert hbone_problem(lines, "pay").startswith("1 of 2 workloads in pay are not on HBONE: api-6c8b9d-qwert")
    assert "no workload in empty" in hbone_problem(lines, "empty")
    assert "no workload" in hbone_problem([], "shop")


def printing(text: str) -> list[str]:
    return [sys.executable, "-c", f"print({text!r})"]


@pytest.mark.asyncio
@pytest.mark.parametrize("ns,state", [("shop", StepState.SUCCEEDED), ("pay", StepState.WARNED)])
async def test_runner_applies_the_verdict_to_a_warn_only_step(ns, state):
    from functools import partial

    step = Step("post", "post-check", argv=printing(TABLE), warn_only=True,
                verify=partial(hbone_problem, namespace=ns))
    runner = Runner(Plan("p", [Phase("x", "x", [step])]))
    events = []
    runner.subscribe(events.append)
    await runner.run()
    assert step.state is state
    if state is StepState.WARNED:
        assert "not on HBONE" in events[-1].message


@pytest.mark.asyncio
async def test_a_failing_command_is_not_verified():
    called = []
    step = Step("post", "post-check", argv=[sys.executable, "-c", "import sys; sys.exit(3)"],
                verify=lambda lines: called.append(lines) or "")
    await Runner(Plan("p", [Phase("x", "x", [step])])).run()
    assert step.state is StepState.FAILED and called == []
