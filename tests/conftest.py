import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Without a GPU, the Triton kernels run in Triton's interpreter on CPU tensors. Triton reads this
# when a kernel is defined, so it must be set before emollm (and its kernels) is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from emollm import ops
from emollm.ops import _backend

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Backends whose kernels run on CPU tensors here (triton joins in its interpreter).
CPU_BACKENDS = [name for name, b in ops.backends().items() if b.runs_on("cpu") and b.available()]
ALL_OPS = tuple(_backend._contracts)
# The ops whose CPU kernels may take the bfloat16 filter (csrc/cpu/knn_filter.cpp): the tests run
# them twice, as "cpu" with it off and as "cpu-bf16" with it forced on, whatever this CPU has.
FILTERED_OPS = {"knn_density", "dpc_cluster", "dpc_cluster_merge"}


def pytest_report_header(config):
    # Which emollm (source tree or an installed wheel) and which releases this run tests.
    import emollm
    from emollm.cli import OPTIONAL_PACKAGES, installed_version

    versions = ", ".join(f"{p} {installed_version(*d) or '-'}" for p, d in OPTIONAL_PACKAGES.items())
    return [f"emollm: {emollm.__file__}", f"torch {torch.__version__}, {versions}",
            f"backends on CPU tensors: {', '.join(CPU_BACKENDS)}"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def backends_for(definition) -> list[str]:
    """The backends a test that takes the ``backend`` fixture runs on, from its markers:
    ``@pytest.mark.ops(...)`` names the ops it exercises (default: every op), and a backend runs
    it only if it implements one of them (faiss, which has knn_density only, would otherwise
    re-run cpu's cases under its name); ``@pytest.mark.not_interpreted`` leaves out interpreted
    backends (Triton's interpreter costs milliseconds per launch; tests/kernels runs the same
    checks on triton at smaller sizes)."""
    marker = definition.get_closest_marker("ops")
    wanted = marker.args if marker else ALL_OPS
    heavy = definition.get_closest_marker("not_interpreted") is not None
    names = []
    for name in CPU_BACKENDS:
        implemented = [op for op in wanted if _backend.implements(name, op)]
        if not implemented or (marker is None and len(implemented) < len(ALL_OPS)):
            continue
        if heavy and ops.backends()[name].interpreted:
            continue
        names.append(name)
        if name == "cpu" and FILTERED_OPS.intersection(wanted):
            names.append("cpu-bf16")
    return names


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        names = backends_for(metafunc.definition)
        metafunc.parametrize("backend", [pytest.param(b, marks=[pytest.mark.triton] if b == "triton" else [], id=b)
                                         for b in names], indirect=True)


@pytest.fixture
def backend(request, monkeypatch):
    """Runs the test once per backend of `backends_for`, inside ``use_backend``; "cpu-bf16" is the
    cpu backend with the bfloat16 filter forced on, and "cpu" has it off."""
    name = request.param
    if name in ("cpu", "cpu-bf16"):
        monkeypatch.setenv("EMOLLM_CPU_BF16", "1" if name == "cpu-bf16" else "0")
        name = "cpu"
    with ops.use_backend(name):
        yield name


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
