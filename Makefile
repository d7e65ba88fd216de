# Two entry points: `make demo` (tutorial on the built-in sine) and `make test` (whole suite).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROPERTY_TESTS := tests/test_checkpoint.py tests/test_data_properties.py tests/test_data_windows.py tests/test_hostile_properties.py
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean bench explore

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first, so nothing later pulls a CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	# Compile the recurrence step loops now (about 15 s); without a compiler it says so,
	# and training uses the Python loops.
	$(PY) -m elman.kernels
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/elman tutorial --out runs/tutorial --overwrite

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src
	$(PY) -m pytest -q

# The property tests with fresh random examples (the test suite repeats the same ones).
explore: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q $(PROPERTY_TESTS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
