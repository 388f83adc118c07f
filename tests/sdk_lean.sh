#!/usr/bin/env bash
# The client SDK builds without the operator: with the default `server`
# feature off, the crate's normal dependencies include none of the
# operator's (kube, k8s-openapi, schemars, axum, prometheus, argon2), and
# the example clients build.
#
#   bash tests/sdk_lean.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tree=$(cargo tree --locked --no-default-features -e normal --prefix none -p crypto-operator)
bad=$(grep -E '^(kube|kube-[a-z]+|k8s-openapi|schemars|axum|axum-core|prometheus|argon2) ' <<<"$tree" || true)
if [ -n "$bad" ]; then
    echo "error: the SDK (--no-default-features) depends on operator crates:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "sdk: $(sort -u <<<"$tree" | wc -l) crates, none of the operator's" >&2
cargo build --locked --no-default-features --examples
