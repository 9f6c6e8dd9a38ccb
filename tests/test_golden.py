"""Golden numbers: every agent's state and metrics after 200 updates (the linear agents: their fit)
equal the recorded ones bit for bit (``tests/golden/agents.py`` says how they are made).

A change of structure (files, classes, how state is grouped) must leave these unchanged. On a
machine whose CPU differs from the recorded one, XLA may pick other kernels, so the test then
compares float64 statistics of each group to a relative tolerance instead of the bytes; the pinned
library versions must match in every case.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import agents as golden  # noqa: E402

RECORDED = json.loads(golden.GOLDEN_FILE.read_text())


def test_pinned_versions():
    now = golden.machine()["versions"]
    assert now == RECORDED["machine"]["versions"], (
        f"library versions {now} differ from the recorded {RECORDED['machine']['versions']}; install with "
        "`pip install -e '.[test]' -c constraints.txt`"
    )


@pytest.mark.parametrize("name", sorted(RECORDED["agents"]))
def test_golden(name):
    want = dict(RECORDED["agents"][name])
    want["metrics"] = {k: v for k, v in want["metrics"].items() if k not in golden.SEARCH_DIAGNOSTICS}
    got = golden.compute(name)
    assert got["step"] == want["step"] and got["dataset"] == want["dataset"]
    assert sorted(got["state"]) == sorted(want["state"]), f"{name}: state groups changed"
    assert sorted(got["metrics"]) == sorted(want["metrics"]), f"{name}: metric names changed"
    same_machine = {k: v for k, v in golden.machine().items()} == RECORDED["machine"]
    for group, w in want["state"].items():
        g = got["state"][group]
        if same_machine:
            assert g["hash"] == w["hash"], f"{name}: {group} differs from the golden bytes"
        else:
            np.testing.assert_allclose(g["stats"], w["stats"], rtol=1e-4, atol=1e-6, err_msg=f"{name}: {group}")
    for metric, w in want["metrics"].items():
        g = got["metrics"][metric]
        if metric in golden.ROUNDED:
            np.testing.assert_allclose(np.asarray(g["values"]), np.asarray(w["values"]), rtol=1e-6,
                                       err_msg=f"{name}: metric {metric}")
        elif same_machine:
            assert g["hash"] == w["hash"], f"{name}: metric {metric} differs from the golden values"
        else:
            np.testing.assert_allclose(np.asarray(g["values"]), np.asarray(w["values"]), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name}: metric {metric}")
