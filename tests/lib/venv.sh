# Sourced by the Python test suites (tests/helm/run.sh, tests/python/run.sh):
# installs python3, pip and venv from Debian when missing, then
# `ensure_venv VENV REQUIREMENTS` makes VENV (gitignored, under .cache/) and
# installs REQUIREMENTS into it when they changed. Sets PY to its python.

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

ensure_venv() {
    local venv=$1 req=$2
    PY="$venv/bin/python"
    if [ ! -x "$PY" ]; then
        mkdir -p "$(dirname "$venv")"
        # Debian ships venv's pip bootstrap in a separate package
        # (python3-venv); without it, make a venv without pip and install
        # into it with the system pip (pip >= 22.3 has --python).
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            python3 -m venv --without-pip "$venv"
        fi
    fi
    # Reinstall only when the requirements change.
    local stamp="$venv/.requirements.sha256" want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        echo "installing Python test requirements into $venv" >&2
        if "$PY" -m pip --version >/dev/null 2>&1; then
            "$PY" -m pip install --disable-pip-version-check -q -r "$req"
        else
            python3 -m pip --python "$PY" install --disable-pip-version-check -q -r "$req"
        fi
        echo "$want" > "$stamp"
    fi
}
