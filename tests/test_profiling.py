"""NVTX ranges: no-ops when off, balanced push/pop around every op when on, compile-safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from emollm import ops, profiling
from emollm.ops import _backend
from emollm.profiling import enabled, nvtx_range
from tests.ops.helpers import tokens


class FakeNvtx:
    """Stands in for the ``nvtx`` module and records what would reach a profiler."""

    def __init__(self):
        self.events: list[tuple[str, str | None]] = []

    def enabled(self) -> bool:
        return True

    def push_range(self, message=None, color=None, domain=None, category=None, payload=None):
        self.events.append(("push", message))

    def pop_range(self, domain=None):
        self.events.append(("pop", None))

    def pushed(self) -> list[str]:
        return [name for kind, name in self.events if kind == "push"]

    def balanced(self) -> bool:
        depth = 0
        for kind, _ in self.events:
            depth += 1 if kind == "push" else -1
            if depth < 0:
                return False
        return depth == 0


@pytest.fixture
def fake(monkeypatch):
    rec = FakeNvtx()
    monkeypatch.setattr(profiling, "_nvtx", rec)
    monkeypatch.setattr(profiling, "_switch", True)
    return rec


def _set_env_switch(monkeypatch, value):
    # EMOLLM_NVTX is read at import; re-read it the way the import does.
    monkeypatch.setenv("EMOLLM_NVTX", value)
    monkeypatch.setattr(profiling, "_switch", profiling._switch_from_env())


def _double(x):
    return x * 2


def test_noop_without_nvtx(monkeypatch):
    monkeypatch.setattr(profiling, "_switch", True)
    monkeypatch.setattr(profiling, "_nvtx", None)
    assert not enabled()
    with nvtx_range("emollm.test"):
        pass
    assert nvtx_range("emollm.test")(_double)(3) == 6
    # The ops run as before.
    assert ops.knn_density(tokens(1, 8, 4), 3).shape == (1, 8)


def test_env_switch_turns_ranges_off(fake, monkeypatch):
    _set_env_switch(monkeypatch, "0")
    assert not enabled()
    with nvtx_range("emollm.test"):
        pass
    nvtx_range("emollm.test")(_double)(3)
    ops.knn_density(tokens(1, 8, 4), 3)
    assert fake.events == []
    _set_env_switch(monkeypatch, "1")
    assert enabled()
    with nvtx_range("emollm.test"):
        pass
    assert fake.pushed() == ["emollm.test"]


def test_context_manager_pushes_and_pops(fake):
    with nvtx_range("emollm.outer", color="green"):
        with nvtx_range("emollm.inner"):
            assert fake.events == [("push", "emollm.outer"), ("push", "emollm.inner")]
    assert fake.events[2:] == [("pop", None), ("pop", None)]


def test_decorator_keeps_return_value_name_and_exceptions(fake):
    @nvtx_range("emollm.work")
    def work(a, *, b):
        """Doc."""
        return a + b

    assert work(1, b=2) == 3
    assert work.__name__ == "work" and work.__doc__ == "Doc."

    @nvtx_range("emollm.fail")
    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        fail()
    with pytest.raises(ValueError, match="inside"), nvtx_range("emollm.ctx"):
        raise ValueError("inside")
    assert fake.pushed() == ["emollm.work", "emollm.fail", "emollm.ctx"]
    assert fake.balanced()  # popped on the way out of the exceptions too


@pytest.mark.parametrize(("value", "on"), [("0", False), (" 0 ", False), ("1", True), ("", True)])
def test_env_switch_is_read_at_import(value, on):
    code = "from emollm import profiling; print(profiling._switch)"
    env = {**os.environ, "EMOLLM_NVTX": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(on)


def test_reused_instance_and_switch_inside_range_stay_balanced(fake, monkeypatch):
    r = nvtx_range("emollm.again")
    with r, r:
        monkeypatch.setattr(profiling, "_switch", False)  # off while two are open: both still pop
    assert fake.pushed() == ["emollm.again", "emollm.again"]
    assert fake.balanced()


@pytest.mark.parametrize("op", ["knn_density", "dpc_delta", "dpc_cluster", "dpc_cluster_merge",
                                "cluster_merge", "gcn_adjacency", "gcn_propagate"])
def test_every_op_pushes_its_range(fake, backend, op):
    x = tokens(2, 16, 8)
    rho = ops.knn_density(x, 3)
    _, assign = ops.dpc_cluster(x, 4, 3)
    z = ops.cluster_merge(x, assign, 4)
    adj = ops.gcn_adjacency(z, 0.5)
    calls = {
        "knn_density": lambda: ops.knn_density(x, 3),
        "dpc_delta": lambda: ops.dpc_delta(x, rho),
        "dpc_cluster": lambda: ops.dpc_cluster(x, 4, 3),
        "dpc_cluster_merge": lambda: ops.dpc_cluster_merge(x, 4, 3),
        "cluster_merge": lambda: ops.cluster_merge(x, assign, 4),
        "gcn_adjacency": lambda: ops.gcn_adjacency(z, 0.5),
        "gcn_propagate": lambda: ops.gcn_propagate(adj, z),
    }
    fake.events.clear()
    calls[op]()
    name = _backend.selected(op, x.device)
    # The op's own range comes first; a composed backend nests the ops it calls inside it.
    assert fake.pushed()[0] == f"emollm.{op}:{name}"
    assert fake.events[-1] == ("pop", None)
    assert fake.balanced()


def test_backward_op_calls_push_ranges(fake):
    z = tokens(1, 6, 4).requires_grad_()
    adj = ops.gcn_adjacency(z.detach(), 0.5)
    out = ops.gcn_propagate(adj, z)
    fake.events.clear()
    out.sum().backward()
    assert [n.split(":")[0] for n in fake.pushed()] == ["emollm.gcn_propagate"]
    assert fake.balanced()


def test_fullgraph_compile_with_ranges(fake):
    torch._dynamo.reset()

    @nvtx_range("emollm.test.scaled")
    def scaled(x):
        return x * 3

    def fn(x):
        with nvtx_range("emollm.test.region", color="blue"):
            rho = ops.knn_density(x, 3)
        return scaled(rho) + 1

    x = tokens(2, 12, 4)
    want = fn(x)
    assert fake.pushed()[0] == "emollm.test.region" and "emollm.test.scaled" in fake.pushed()
    fake.events.clear()
    compiled = torch.compile(fn, fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled(x), want)
    # The Python ranges were traced away; the custom op's body still runs, and pushes, at runtime.
    backend = _backend.selected("knn_density", x.device)
    assert fake.pushed() == [f"emollm.knn_density:{backend}"]
    assert fake.balanced()


def test_real_nvtx_push_pop_runs():
    pytest.importorskip("nvtx")
    # No profiler is attached in the test run, so this only checks that the calls are valid.
    with nvtx_range("emollm.test.real", color="green"):
        assert nvtx_range("emollm.test.real")(_double)(2) == 4


def test_projector_pushes_forward_and_stage_ranges(fake):
    from emollm.projector import MVPProjector

    MVPProjector(8, 4)(torch.randn(1, 100, 8))
    names = fake.pushed()
    assert names[0] == "emollm.mvp.forward"
    for expected in ("emollm.mvp.stage1", "emollm.mvp.stage2", "emollm.mvp.stage3", "emollm.mvp.content",
                     "emollm.mvp.relation"):
        assert expected in names
    assert fake.balanced()


def _phases(env: dict) -> dict:
    code = ("import json, torch, emollm._C as C\n"
            "from emollm import ops\n"
            "x = torch.randn(3, 300, 16)\n"
            "C.profile(True)\n"
            "torch.ops.emollm_C.dpc_cluster_merge(x, 8, 5, None, True, None)\n"
            "print(json.dumps(C.profile(True)))\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cpu_phase_profiler_counts_only_when_asked():
    on = _phases({"EMOLLM_CPU_PROFILE": "1"})
    assert set(on) == {"prepare", "gram", "select", "density", "delta", "centers", "assign", "merge"}
    assert on["gram"] > 0 and on["select"] > 0 and on["merge"] > 0
    assert sum(_phases({"EMOLLM_CPU_PROFILE": "0"}).values()) == 0
