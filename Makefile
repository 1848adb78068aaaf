# BeatFlow — one entry point for people and CI.
#   make run    the whole stack on this machine (creates .venv, installs, starts)
#   make test   the test suite against real PostgreSQL, Redis and S3 servers (test-slow: the long runs)
#   make lint   ruff + mypy
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DISTS  := protos services/common services/vcs services/generator services/separator services/gateway clients/cli
PROTOS := $(wildcard protos/beatflow/v1/*.proto)

.PHONY: venv run test test-slow lint protos check-protos sysdeps validate-deploy bench gpu-check gpu-wheels clean

venv: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(DISTS))
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "BeatFlow needs Python 3.11+, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt -r requirements-dev.txt $(addprefix -e ,$(filter-out services/common,$(DISTS))) -e "services/common[local]"
	touch $(STAMP)

protos: venv
	$(PY) -m grpc_tools.protoc -I protos --python_out=protos --grpc_python_out=protos --pyi_out=protos $(PROTOS)

check-protos: venv
	@tmp=$$(mktemp -d); \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --grpc_python_out=$$tmp --pyi_out=$$tmp $(PROTOS) && \
	for f in $$tmp/beatflow/v1/*.py*; do \
	  cmp -s $$f protos/beatflow/v1/$$(basename $$f) || { echo "generated $$(basename $$f) is stale: run 'make protos'"; exit 1; }; \
	done; rm -rf $$tmp; echo "generated protos are current"

# System packages some tests drive (headless Chromium for the studio test).
sysdeps:
	@command -v git >/dev/null 2>&1 || { echo "the vcs tests compare merge bases with git: install git"; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium (need root and Debian's packages)"; exit 1; }; }

run: venv
	$(PY) -m beatflow.common.stack

# Dockerfiles, docker-compose (every profile) and the Kubernetes overlays, with real tools.
validate-deploy: venv
	bash deploy/validate.sh

test: venv sysdeps validate-deploy
	$(PY) -m pytest -q -m "not slow"

# The longer runs (fuzzing at depth, fault loops): not part of `make test`'s 5-minute budget.
test-slow: venv sysdeps
	$(PY) -m pytest -q -m slow --timeout 3600

# The long runs (a >= 5,000-case API fuzz), excluded from `make test`.

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy  # files, paths and strictness: [tool.mypy] in pyproject.toml

bench: venv
	$(PY) bench/queue.py
	$(PY) bench/vcs.py
	$(PY) bench/separate.py
	$(PY) bench/generate.py
	$(PY) bench/cli.py

# GPU readiness: gpu-marked tests + engine/separation benchmarks into one JSON (bench/gpu_check.py).
# On a bare GPU machine (no network) carry .whl/ (make gpu-wheels) and use its python3:
#   make gpu-check PY=python3 GPU_WHEELS=.whl
DEVICE ?= cuda
QUICK  ?=
GPU_WHEELS ?=
gpu-check:
	@if [ -n "$(GPU_WHEELS)" ]; then \
	  $(PY) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/bf-site $(GPU_WHEELS)/*.whl || exit 1; fi
	PYTHONPATH="$(if $(GPU_WHEELS),/tmp/bf-site:)$(CURDIR)/protos:$(CURDIR)/services/common:$(CURDIR)/services/generator:$(CURDIR)/services/separator:$(CURDIR)/services/vcs:$(CURDIR)/services/gateway:$$PYTHONPATH" \
	  $(PY) bench/gpu_check.py --device $(DEVICE) $(if $(QUICK),--quick)

# Wheels (Python 3.12, x86-64) of what gpu-check needs that a bare GPU machine (torch, transformers,
# numpy, scipy, pytest preinstalled) lacks, into the ignored .whl/ folder that travels with the command.
gpu-wheels: venv
	$(PY) bench/gpu_wheels.py .whl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
