#!/usr/bin/env bash
# passgate setup: one entry point for developers, CI and devices.
#
#   ./setup.sh test              set up this machine (system packages when root, .venv), run all tests
#   ./setup.sh simulate [ARGS]   set up and run the simulated checkpoint on a laptop
#   ./setup.sh dev               set up only
#   sudo ./setup.sh install [--deb FILE] [--dry-run] [--readonly-root | --writable-root]
#                           [--state-device DEV] [--no-pi-camera]
#                                provision a Raspberry Pi (Raspberry Pi OS Bookworm or Trixie, 64-bit):
#                                build the package from this checkout (or take --deb FILE),
#                                apt-get install it, then the Pi-only steps (deploy/install.sh)
#   ./setup.sh package [--arch amd64|arm64] [--out DIR]
#                                the Debian package DIR/passgate_<version>_<arch>.deb (default dist/)
#   ./setup.sh lock              remake requirements/device-*.lock (pinned, hashed dependencies)
#   sudo ./setup.sh image --base IMAGE.img --config DEVICE.toml --out OUT.img [--bundle FILE]
#                         [--state-partition SIZE] (more: deploy/image.sh)
#                                a stock image + a device file -> a ready-to-flash image
#
# Every mode is idempotent: packages already present are not reinstalled, the venv is reused,
# and a second `install` changes nothing and says so (the same package is not reinstalled).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
VENV="$HERE/.venv"

# System packages: what running passgate on a laptop needs, and what the test suite adds
# (systemd-analyze for the unit gate, systemd-nspawn to boot the package, debootstrap/rsync and
# image tools for the install and image tests, PostgreSQL for the collector's second backend, Chromium for the staff page).
BASE_APT=(python3-venv python3-dev libzbar0)
TEST_APT=("${BASE_APT[@]}" systemd systemd-container debootstrap rsync mtools dosfstools fdisk
    e2fsprogs postgresql chromium chromium-driver lintian python3-pip python3-argcomplete)
# One venv for every mode, so switching between simulate and test never reinstalls.
EXTRAS=test,collector

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
    # An editable install writes no bytecode: compile it now, so the first start of the
    # scanner does not pay for it (bench/startup.py measures cold and warm).
    "$VENV/bin/python" -m compileall -q firmware/passgate collector/passgate_collector
    echo "$want" >"$stamp"
}

cmd=${1:-}
shift || true
case "$cmd" in
    test)
        apt_install "${TEST_APT[@]}"
        python_env "$EXTRAS"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    simulate)
        apt_install "${BASE_APT[@]}"
        python_env "$EXTRAS"
        exec "$VENV/bin/passgate" run --simulate "$@"
        ;;
    dev)
        apt_install "${TEST_APT[@]}"
        python_env "$EXTRAS"
        ;;
    install)
        # shellcheck source=deploy/install.sh
        . "$HERE/deploy/install.sh"
        install_main "$@"
        ;;
    package)
        # shellcheck source=deploy/package.sh
        . "$HERE/deploy/package.sh"
        package_main "$@"
        ;;
    lock)
        # requirements/device-<arch>.lock: every dependency pinned with its hashes, resolved
        # for the target (uv, from the dev extra: it resolves for aarch64 on an amd64 host).
        python_env "$EXTRAS,dev"
        for a in aarch64:arm64 x86_64:amd64; do
            "$VENV/bin/uv" pip compile -q pyproject.toml --extra collector --python-version 3.11 \
                --python-platform "${a%%:*}-manylinux_2_28" --generate-hashes --no-emit-package numpy \
                --only-binary :all: --custom-compile-command "./setup.sh lock" \
                -o "requirements/device-${a##*:}.lock"
        done
        ;;
    image)
        # shellcheck source=deploy/image.sh
        . "$HERE/deploy/install.sh"
        . "$HERE/deploy/image.sh"
        image_main "$@"
        ;;
    *)
        echo "usage: ./setup.sh test|simulate|dev|lock|package [--arch A]|install [--deb F] [--dry-run]|image --base IMG --config F --out OUT" >&2
        exit 2
        ;;
esac
