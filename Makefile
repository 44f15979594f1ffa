# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use and
# install the locked test environment (requirements/test.txt: every dependency pinned), then build
# and install emollm with its C++ extension (`pip install --no-build-isolation -e ".[dev]"`).
#
#   make test        lint + the whole suite, on the locked (newest tested) versions
#   make test-lower  the model, training and evaluation tests on every declared lower bound
#                    (requirements/lower.txt), against emollm built as a wheel in .venv-lower
#   make test-wheel  the built wheel installed into clean environments: base only, and all extras
#   make ci          the three above: what .ci/run runs
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
MODEL_TESTS := tests/model tests/training tests/evaluation tests/integrations tests/prompting tests/test_cli.py

.PHONY: demo test test-lower test-wheel ci lint bench env lock clean

demo: $(STAMP)
	$(BIN)/python -m emollm demo --out demo-out

test: $(STAMP) lint
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check .

test-lower: $(LOWER_STAMP)
	rm -rf build/lower-tests && mkdir -p build/lower-tests && cp -r tests pyproject.toml build/lower-tests/
	cd build/lower-tests && ../../$(LOWER)/bin/python -m pytest -p no:cacheprovider $(MODEL_TESTS)

test-wheel: $(STAMP)
	rm -rf build/wheel && $(BIN)/pip wheel --quiet --no-build-isolation --no-deps -w build/wheel .
	EMOLLM_WHEEL_DIR=build/wheel EMOLLM_WHEEL_CONSTRAINTS=$(LOCK) $(BIN)/python -m pytest tests/packaging -v

ci: test test-lower test-wheel

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

clean:
	rm -rf build $(VENV) $(LOWER) emollm/_C*.so *.egg-info
