# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= dev,llm,ray

.PHONY: install test test-all demo bench benchmark tensorboard lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

demo: $(STAMP)
	$(BIN)/recsim-marl demo

# throughput into a new results/throughput-<time>/ (never the committed results/throughput/)
bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

# the quick policy suite into a new results/quick-<time>/
benchmark: $(STAMP)
	$(BIN)/recsim-marl benchmark --suite quick --workers 2

# TensorBoard on runs/ (the demo's and train's run folders), on 127.0.0.1; Ctrl-C stops it
tensorboard: $(STAMP)
	mkdir -p runs
	$(BIN)/recsim-marl tensorboard --logdir runs

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
