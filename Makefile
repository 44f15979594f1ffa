# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use,
# reuse an importable torch (else install torch==2.13.0), install the build tools, then build
# and install emollm with its C++ extension (`pip install --no-build-isolation -e ".[dev]"`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emollm-installed
SOURCES := pyproject.toml setup.py CMakeLists.txt $(wildcard csrc/*.cpp csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.h)

.PHONY: demo test lint bench env clean

demo: $(STAMP)
	$(BIN)/python -m emollm demo --out demo-out

test: $(STAMP) lint
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-json=benchmarks/results/last-run.json -q
	$(BIN)/python benchmarks/report.py benchmarks/results/last-run.json

env: $(STAMP)
	$(BIN)/python -m emollm env

$(BIN)/python:
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python $(SOURCES)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install --quiet "setuptools>=77" wheel "pybind11>=2.12" "cmake>=3.18" ninja
	$(BIN)/python -m pip install --no-build-isolation -e ".[dev]"
	$(BIN)/python -c "import emollm, emollm._C"
	touch $(STAMP)

clean:
	rm -rf build $(VENV) emollm/_C*.so *.egg-info
