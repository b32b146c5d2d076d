#!/usr/bin/env bash
# passgate setup: one entry point for developers, CI and (later) devices.
#
#   ./setup.sh test       set up this machine (system packages when root, .venv) and run all tests
#   ./setup.sh simulate   set up and run the simulated checkpoint on a laptop
#   ./setup.sh dev        set up only
#
# Idempotent: packages already present are not reinstalled, the venv is reused, and the
# Python install is skipped when pyproject.toml has not changed since the last one.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
VENV="$HERE/.venv"

# System packages the tests need on a fresh Debian/Ubuntu machine.
APT_PACKAGES=(python3-venv python3-dev libzbar0 systemd)

say() { printf 'setup: %s\n' "$*" >&2; }

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            SUDO=sudo
        else
            say "missing system packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})"
            return 0
        fi
    fi
    say "installing system packages: ${missing[*]}"
    ${SUDO:-} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {
    local extras=$1
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.passgate-installed" want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "python environment up to date"
        return 0
    fi
    say "installing passgate[$extras] into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[$extras]"
    echo "$want" >"$stamp"
}

cmd=${1:-}
shift || true
case "$cmd" in
    test)
        apt_install "${APT_PACKAGES[@]}"
        python_env test
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    simulate)
        apt_install "${APT_PACKAGES[@]}"
        python_env test
        exec "$VENV/bin/passgate" run --simulate "$@"
        ;;
    dev)
        apt_install "${APT_PACKAGES[@]}"
        python_env test
        ;;
    *)
        echo "usage: ./setup.sh test|simulate|dev" >&2
        exit 2
        ;;
esac
