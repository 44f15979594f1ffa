import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Without a GPU, the Triton kernels run in Triton's interpreter on CPU tensors. Triton reads this
# when a kernel is defined, so it must be set before emollm (and its kernels) is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from emollm import ops

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Backends that run on CPU tensors here. The triton backend joins under TRITON_INTERPRET=1.
CPU_BACKENDS = [b for b in ops.available_backends() if b in ("reference", "cpu", "faiss")
                or (b == "triton" and os.environ.get("TRITON_INTERPRET") == "1")]


def pytest_report_header(config):
    # Which emollm (source tree or an installed wheel) and which releases this run tests.
    import emollm
    from emollm.cli import OPTIONAL_PACKAGES, installed_version

    versions = ", ".join(f"{p} {installed_version(*d) or '-'}" for p, d in OPTIONAL_PACKAGES.items())
    return [f"emollm: {emollm.__file__}", f"torch {torch.__version__}, {versions}"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Which backends a test that takes the `backend` fixture runs on. Left out, with the reason:
# - faiss implements knn_density only; elsewhere it falls through to cpu and would re-run cpu's
#   cases under another name.
# - triton in the interpreter (no GPU), where a kernel launch costs milliseconds: tests that call
#   the ops hundreds of times (gradcheck, whole pipelines twice, the projector's training-style
#   tests) take 30-430 s each. tests/kernels runs the same checks on triton at smaller sizes, and
#   the projector keeps a few end-to-end cases on triton.
_FAISS_MODULES = {"test_knn_density", "test_errors", "test_inference_mode", "test_offset"}
_TOO_SLOW_INTERPRETED = {("test_dpc_cluster_merge", "test_gradients_match_separate_ops"),
                         ("test_gcn", "test_gradcheck"), ("test_inference_mode", "test_inference_mode")}
_PROJECTOR_ON_INTERPRETED_TRITON = {"test_output_shape", "test_padded_tokens_change_nothing",
                                    "test_expand_event_is_the_projector_over_its_frames"}


def backends_for(module: str, function: str, in_projector: bool) -> list[str]:
    names = []
    for b in CPU_BACKENDS:
        if b == "faiss" and module not in _FAISS_MODULES:
            continue
        if b == "triton" and not torch.cuda.is_available():
            if (module, function) in _TOO_SLOW_INTERPRETED:
                continue
            if in_projector and function not in _PROJECTOR_ON_INTERPRETED_TRITON:
                continue
        names.append(b)
    return names


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        in_projector = "projector" in str(metafunc.definition.path.parent)
        names = backends_for(module, metafunc.function.__name__, in_projector)
        metafunc.parametrize("backend", [pytest.param(b, marks=[pytest.mark.triton] if b == "triton" else [], id=b)
                                         for b in names], indirect=True)


@pytest.fixture
def backend(request):
    """Runs the test once per backend of `backends_for`, inside ``use_backend``."""
    with ops.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
