import pytest
import torch

from emollm import _extension, ops
from emollm.ops import _backend


def test_reference_always_available():
    assert "reference" in ops.available_backends()


def test_cpu_backend_is_built_here():
    """The suite must exercise the compiled kernels: a silent fallback would test nothing."""
    assert _extension.C is not None, _extension.import_error
    assert "cpu" in ops.available_backends()


def test_auto_prefers_cpu_kernels():
    assert _backend.selected("dpc_cluster", torch.device("cpu")) == "cpu"


def test_use_backend_is_scoped():
    with ops.use_backend("reference"):
        assert _backend.selected("knn_density", torch.device("cpu")) == "reference"
        with ops.use_backend("cpu"):
            assert _backend.selected("knn_density", torch.device("cpu")) == "cpu"
        assert _backend.selected("knn_density", torch.device("cpu")) == "reference"
    assert _backend.selected("knn_density", torch.device("cpu")) == "cpu"


def test_env_variable(monkeypatch):
    monkeypatch.setenv("EMOLLM_BACKEND", "reference")
    assert _backend.selected("gcn_propagate", torch.device("cpu")) == "reference"
    monkeypatch.setenv("EMOLLM_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="unknown backend 'nonsense'"):
        ops.knn_density(torch.randn(5, 3), 2)


def test_unknown_and_unavailable_backends_say_why():
    with pytest.raises(ValueError, match="unknown backend"):
        with ops.use_backend("tpu"):
            pass
    missing = [name for name, (ok, _) in ops.backend_status().items() if not ok]
    for name in missing:
        with pytest.raises(RuntimeError, match=f"backend '{name}' is not available: "):
            with ops.use_backend(name):
                pass


def test_cpu_backend_rejects_other_devices():
    with ops.use_backend("cpu"):
        with pytest.raises(RuntimeError, match="CPU tensors only"):
            _backend.selected("knn_density", torch.device("meta"))


def test_ops_are_registered_with_torch_library():
    for op in ("knn_density", "dpc_delta", "dpc_cluster", "cluster_merge", "gcn_adjacency", "gcn_propagate"):
        assert hasattr(torch.ops.emollm, op)
        assert hasattr(torch.ops.emollm_C, op)  # the C++ kernels under their own namespace
