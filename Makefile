# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use and
# install the locked test environment (requirements/test.txt: every dependency pinned), then build
# and install emollm with its C++ extension (`pip install --no-build-isolation -e ".[dev]"`).
#
#   make test        lint + the whole suite, on the locked (newest tested) versions
#   make test-lower  the model, training and evaluation tests on every declared lower bound (those not
#                    marked slow: the multi-process and learning runs stay in make test, keeping CI in time)
#                    (requirements/lower.txt), against emollm built as a wheel in .venv-lower
#   make test-wheel  the built wheel installed into clean environments: base only, and all extras
#   make ci          the three above and the compile gate: what .ci/run runs
#   make compile-gate  every Triton kernel variant compiled for sm_80 and sm_90 with the installed
#                    Triton and with Triton 3.6 (build/triton36), and the CUDA sources through nvcc,
#                    within register, spill and shared-memory budgets; no GPU needed
#   make gpu-check   on a GPU machine: build the CUDA extension, run the gpu tests and the GPU
#                    benchmarks, write benchmarks/results/<gpu>.json (docs/gpu-check.md)
#   make gpu-check-dry  the same script's whole flow on CPU with tiny shapes
#   make lock        refresh both lock files from pyproject.toml (uv pip compile)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emollm-installed
LOWER := .venv-lower
LOWER_STAMP := $(LOWER)/.emollm-installed
LOWER_BASE := $(LOWER)/.torch-installed
LOCK := requirements/test.txt
LOWER_LOCK := requirements/lower.txt
SOURCES := pyproject.toml setup.py CMakeLists.txt $(wildcard csrc/*.cpp csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.h)
PY_SOURCES := $(shell find emollm kernels -name '*.py' 2>/dev/null)
BUILD_TOOLS := setuptools wheel pybind11 cmake ninja
# uv's platform for the lock files: CI's (Linux x86_64, glibc 2.28+, Python 3.11).
LOCK_FLAGS := --upgrade --python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet
# The suites that depend on transformers, peft and accelerate: what the lower bounds must pass.
MODEL_TESTS := tests/model tests/training tests/evaluation tests/integrations tests/prompting tests/inference \
	tests/test_cli.py

.PHONY: demo test test-lower test-wheel ci lint bench env lock clean triton36 compile-gate gpu-check gpu-check-dry

demo: $(STAMP)
	$(BIN)/python -m emollm demo --out demo-out

# The compile gate runs in its own target (minutes, and it wants build/triton36).
test: $(STAMP) lint
	$(BIN)/python -m pytest tests -m "not compile_gate"

lint: $(STAMP)
	$(BIN)/ruff check .

test-lower: $(LOWER_STAMP)
	rm -rf build/lower-tests && mkdir -p build/lower-tests && cp -r tests configs pyproject.toml build/lower-tests/
	cd build/lower-tests && ../../$(LOWER)/bin/python -m pytest -p no:cacheprovider -m "not slow" $(MODEL_TESTS)

test-wheel: $(STAMP)
	rm -rf build/wheel && $(BIN)/pip wheel --quiet --no-build-isolation --no-deps -w build/wheel .
	EMOLLM_WHEEL_DIR=build/wheel EMOLLM_WHEEL_CONSTRAINTS=$(LOCK) $(BIN)/python -m pytest tests/packaging -v

ci: test test-lower test-wheel compile-gate

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-json=benchmarks/results/last-run.json -q
	$(BIN)/python benchmarks/report.py benchmarks/results/last-run.json

env: $(STAMP)
	$(BIN)/python -m emollm env

lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml requirements/test.in --extra dev --override requirements/overrides.txt \
		$(LOCK_FLAGS) -o $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra dev --resolution lowest-direct $(LOCK_FLAGS) -o $(LOWER_LOCK)
	@echo "refreshed $(LOCK) and $(LOWER_LOCK); run make test test-lower before committing them"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first (the locked 2.13.0 is the CPU-only wheel on CI's disk), then the build tools, then
# emollm against them; the lock holds every other version.
$(STAMP): $(BIN)/python $(SOURCES) $(LOCK)
	$(BIN)/python -m pip install --quiet -c $(LOCK) torch $(BUILD_TOOLS)
	$(BIN)/python -m pip install --quiet -c $(LOCK) --no-build-isolation -e ".[dev]"
	$(BIN)/python -c "import emollm, emollm._C"
	touch $(STAMP)

# The lower environment installs emollm as a wheel built against its own torch (the editable
# install of .venv owns emollm/_C*.so in the source tree), and its tests run from a copy of tests/
# so that `import emollm` finds the installed wheel, not the source tree.
$(LOWER_BASE): $(LOWER_LOCK)
	rm -rf $(LOWER)
	$(PYTHON) -m venv $(LOWER)
	$(LOWER)/bin/python -m pip install --quiet --upgrade pip
	$(LOWER)/bin/python -m pip install --quiet -c $(LOWER_LOCK) torch $(BUILD_TOOLS)
	touch $(LOWER_BASE)

# EMOLLM_CUDA=0: the CPU kernels only (the GPU machine compiles the CUDA ones).
$(LOWER_STAMP): $(LOWER_BASE) $(SOURCES) $(PY_SOURCES)
	rm -rf build/lower-wheel
	EMOLLM_CUDA=0 $(LOWER)/bin/python -m pip wheel --quiet --no-build-isolation --no-deps -w build/lower-wheel .
	$(LOWER)/bin/python -m pip install --quiet --force-reinstall --no-deps build/lower-wheel/emollm-*.whl
	$(LOWER)/bin/python -m pip install --quiet -c $(LOWER_LOCK) "$$(ls build/lower-wheel/emollm-*.whl)[dev]"
	cd $(LOWER) && bin/python -m emollm env
	touch $(LOWER_STAMP)

# Triton 3.6, the GPU machine's, alone in a folder: the compile gate puts it first on PYTHONPATH
# in the processes that compile (torch 2.13 imports beside it; nothing else is installed).
TRITON36 := build/triton36
$(TRITON36)/.installed: | $(BIN)/python
	rm -rf $(TRITON36)
	$(BIN)/python -m pip install --quiet --no-deps --target $(TRITON36) triton==3.6.0
	touch $@

triton36: $(TRITON36)/.installed

# The tables (registers, spills, shared memory per variant) are printed whether or not it passes.
compile-gate: $(STAMP) triton36
	$(BIN)/python -m pytest -p no:cacheprovider -m compile_gate tests/kernels/test_compile_gate.py -v; \
		status=$$?; cat build/compile-gate/*.txt 2>/dev/null; exit $$status

# On the GPU machine: its own python3 (torch 2.11+cu130, Triton 3.6), no venv, no package index.
# Pass EMOLLM_COMMIT=<sha> there: the copy of the tree has no .git (docs/gpu-check.md).
GPU_PYTHON ?= python3
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py

gpu-check-dry: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --dry-run

clean:
	rm -rf build $(VENV) $(LOWER) emollm/_C*.so *.egg-info
