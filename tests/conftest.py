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


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Tests that call an op hundreds of times (gradcheck, whole pipelines twice): 36-110 s each for
# triton under the interpreter, where a kernel launch costs milliseconds. tests/kernels runs the
# same checks on the triton backend at smaller sizes.
_TOO_SLOW_INTERPRETED = {("test_dpc_cluster_merge", "test_gradients_match_separate_ops"),
                         ("test_gcn", "test_gradcheck"), ("test_inference_mode", "test_inference_mode")}


@pytest.fixture(params=[pytest.param(b, marks=[pytest.mark.triton] if b == "triton" else []) for b in CPU_BACKENDS])
def backend(request):
    """Runs the test once per available backend, inside ``use_backend``."""
    test = (request.module.__name__.rsplit(".", 1)[-1], request.function.__name__)
    if request.param == "triton" and not torch.cuda.is_available() and test in _TOO_SLOW_INTERPRETED:
        pytest.skip("too slow in the Triton interpreter; tests/kernels covers it at a smaller size")
    with ops.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
