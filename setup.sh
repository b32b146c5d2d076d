#!/usr/bin/env bash
# passgate setup: one entry point for developers, CI and devices.
#
#   ./setup.sh test              set up this machine (system packages when root, .venv), run all tests
#   ./setup.sh simulate [ARGS]   set up and run the simulated checkpoint on a laptop
#   ./setup.sh dev               set up only
#   sudo ./setup.sh install [--dry-run] [--readonly-root]
#                                provision a Raspberry Pi (Raspberry Pi OS Bookworm or Trixie, 64-bit)
#
# Every mode is idempotent: packages already present are not reinstalled, the venv is reused,
# and a second `install` changes nothing and says so.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
VENV="$HERE/.venv"

# System packages the tests need on a fresh Debian/Ubuntu machine.
APT_PACKAGES=(python3-venv python3-dev libzbar0 systemd debootstrap rsync)

say() { printf 'setup: %s\n' "$*" >&2; }

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$p"
    done
}

apt_install() {
    local missing
    read -r -a missing <<<"$(missing_packages "$@" | tr "\n" " ")"
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            say "missing system packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})"
            return 0
        fi
    fi
    say "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
    install)
        # shellcheck source=deploy/install.sh
        . "$HERE/deploy/install.sh"
        install_main "$@"
        ;;
    *)
        echo "usage: ./setup.sh test|simulate|dev|install [--dry-run]" >&2
        exit 2
        ;;
esac
