# BeatFlow — one entry point for people and CI.
#   make run    the whole stack on this machine (creates .venv, installs, starts)
#   make test   the test suite against real PostgreSQL, Redis and S3 servers
#   make test-nightly  the long runs (API fuzz of >= 5,000 cases), not part of make test
#   make lint   ruff + mypy
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DISTS  := protos services/common services/vcs services/generator services/separator services/gateway
PROTOS := $(wildcard protos/beatflow/v1/*.proto)

.PHONY: venv run test test-nightly lint protos check-protos sysdeps validate-deploy bench clean

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
	$(PY) -m pytest -q

# The long runs (a >= 5,000-case API fuzz), excluded from `make test`.
test-nightly: venv
	$(PY) -m pytest -q -m nightly --timeout 3600

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy protos/beatflow services/common/beatflow services/vcs/beatflow services/generator/beatflow services/separator/beatflow services/gateway/beatflow bench

bench: venv
	$(PY) bench/queue.py
	$(PY) bench/vcs.py
	$(PY) bench/separate.py
	$(PY) bench/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
