# Two entry points that work on a fresh machine: `make demo` and `make test`.
# TORCH pins the PyTorch pair that imports together on x86_64 CPU machines; override it for your CUDA build,
# e.g. `make install TORCH="torch torchvision"`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= demo-output

.PHONY: install demo test test-fast check-wheel lint bench clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m pip install -q scipy && $(BIN)/python -m pip install -q --no-deps torchattacks==3.5.1
	touch $@

install: $(VENV)/.installed

demo: install
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh $(DEMO_DIR)

# Everything: lint, the import-layer contracts (pyproject.toml), the whole suite (slow tests included), then the wheel-install check.
# One OpenMP thread per test process: the suite runs many small models, where a second thread gains little and,
# on cores shared with other work, oversubscription costs up to 10x (CLI runs inside tests inherit it too).
test: install
	$(BIN)/ruff check tgazsr_cli tests scripts bench
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -W ignore::UserWarning
	TORCH="$(TORCH)" PYTHON="$(PYTHON)" bash scripts/check_wheel.sh

# The suite without the tests marked slow (multi-process, kill/resume, mini integration).
test-fast: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -W ignore::UserWarning -m "not slow"

check-wheel: install
	TORCH="$(TORCH)" PYTHON="$(PYTHON)" bash scripts/check_wheel.sh

lint: install
	$(BIN)/ruff check tgazsr_cli tests scripts bench
	$(BIN)/lint-imports

# CPU benchmarks against the reference code's computation pattern and torchattacks (bench/README.md).
bench: install
	OMP_NUM_THREADS=2 $(BIN)/python bench/train_step.py --warmup 0 --steps 1 --threads 2
	OMP_NUM_THREADS=2 $(BIN)/python bench/pgd_eval.py --batch 8 --steps 10 --repeats 2 --warmup 0 --threads 2

clean-demo:
	rm -rf $(DEMO_DIR)
