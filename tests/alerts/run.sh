#!/usr/bin/env bash
# Checks and unit-tests the Prometheus alert rules with promtool:
#   charts/crypto-operator/files/alerts.yaml  (the rules)
#   tests/alerts/alerts_test.yaml             (the promtool unit tests)
# Installs Debian's `prometheus` package (which ships promtool) if promtool
# is missing. Never starts the prometheus service.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

find_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        command -v promtool
    elif [ -x /usr/bin/promtool ]; then
        echo /usr/bin/promtool
    else
        return 1
    fi
}

if ! PROMTOOL="$(find_promtool)"; then
    echo "promtool not found; installing Debian package 'prometheus'" >&2
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "error: promtool missing, not root and no sudo available" >&2
        exit 1
    fi
    ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
    ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends prometheus
    PROMTOOL="$(find_promtool)" || { echo "error: promtool still not found after install" >&2; exit 1; }
fi

"$PROMTOOL" --version 2>&1 | sed -n 1p
"$PROMTOOL" check rules charts/crypto-operator/files/alerts.yaml
"$PROMTOOL" test rules tests/alerts/alerts_test.yaml
