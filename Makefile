# Two entry points that work on a fresh machine: `make demo` and `make test`.
# TORCH pins the PyTorch pair that imports together on x86_64 CPU machines; override it for your CUDA build,
# e.g. `make install TORCH="torch torchvision"`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= demo-output

.PHONY: install demo test lint bench clean-demo

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

test: install
	$(BIN)/ruff check tgazsr_cli tests scripts
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -W ignore::UserWarning

lint: install
	$(BIN)/ruff check tgazsr_cli tests scripts

clean-demo:
	rm -rf $(DEMO_DIR)
