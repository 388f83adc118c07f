#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian machine with the Rust
# toolchain: installs what the tests need (Debian's prometheus package for
# promtool; the Python suites install their own tools into .cache/), then
# runs every Rust test, the alert-rule tests, the Helm chart tests and the
# third-party client tests (Python grpc.aio, grpcurl).
#
#   bash tests/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || need_apt+=(prometheus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing: ${need_apt[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install the stable Rust toolchain (rustup)" >&2; exit 1; }

# Many loopback connections in the fleet tests.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The modules follow the direction of use src/lib.rs states.
python3 tests/layers.py

# Most integration tests wait on sockets and timers, not the CPU: four at
# a time on two cores (measured: 35 s instead of 54 s, the same CPU time).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
# Property tests ("fuzzing") run a bounded number of cases.
export PROPTEST_CASES="${PROPTEST_CASES:-1000}"
# `cargo test --all-targets` builds examples as test harnesses; the SDK test
# that runs the example client needs the real example binary.
cargo build --locked --examples
cargo test --locked --all-targets
cargo test --locked --doc
# The client SDK builds without the operator's dependencies.
bash tests/sdk_lean.sh
bash tests/alerts/run.sh
bash tests/helm/run.sh
bash tests/python/run.sh
