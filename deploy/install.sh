# shellcheck shell=bash
# `sudo ./setup.sh install`: provision a checkpoint. Sourced by setup.sh; not run directly.
#
# One install path: THE PACKAGE. The install builds passgate_<version>_<arch>.deb from this
# checkout (`./setup.sh package`, into dist/) or takes the one given with --deb, and installs
# it with apt-get (which brings its Debian dependencies); the package's maintainer scripts
# make the users, groups and folders, enable the units and keep /etc/passgate on upgrade.
# What is left here is what a package cannot do: the Raspberry Pi OS packages chosen by flag
# (--no-pi-camera), I2C and the camera in config.txt, the state partition and the read-only
# root (deploy/state.sh), and clearing away an install made by the old rsync+pip path.
#
# Each step checks before it acts and reports only what it changed, so a second run prints
# "nothing to change": the package counts as unchanged when the installed one has the same
# version, the same files (the package's md5sums) and the same dependencies; the build is
# reproducible, so rebuilding the same checkout gives the same files. A failed step stops
# the install with a non-zero exit and never prints "done" or "nothing to change"; after
# apt-get, dpkg's own database must say the package is installed at that version.
# --dry-run prints what would be done and changes nothing (it does not build: it compares the
# checkout's version with the installed one, or the --deb given, exactly).
# Hardware steps (I2C, camera, picamera2, lgpio) run only on a Raspberry Pi; elsewhere (a
# chroot in CI, a laptop) they are skipped and listed. PASSGATE_ASSUME_PI=1 / =0 overrides
# the detection.
#
#   --deb FILE         install this package (built elsewhere, e.g. `./setup.sh package --arch
#                      arm64` on a laptop, or a release's .deb) instead of building one here
#   --dry-run          print what would be done, change nothing
#   --readonly-root    the state on its own partition (PGSTATE, or --state-device), then
#                      Raspberry Pi OS's overlay on: the root is read-only from the next boot
#   --writable-root    the overlay off again (the state stays on its partition)
#   --state-device DEV the state partition to use (with --readonly-root, or alone: state
#                      partition without the overlay)
#   --no-pi-camera     on a Pi, leave out the camera packages (python3-picamera2, python3-libcamera)
#                      that only Raspberry Pi OS's repository has: camera.source files or webcam
# The state partition and the overlay are deploy/state.sh.

PG_PREFIX=/opt/passgate
PG_ETC=/etc/passgate
PG_STATE=/var/lib/passgate
PG_SYNC_STATE=/var/lib/passgate-sync
# shellcheck source=deploy/state.sh
. "$(dirname "${BASH_SOURCE[0]}")/state.sh"
# The units the package ships; the old rsync+pip path put copies of these in /etc.
PG_UNITS=(passgate-scanner.service passgate-sync.service passgate-firstboot.service)
# What the package recommends, installed with it (apt-get runs with --no-install-recommends
# so that the Pi's camera packages follow --no-pi-camera, not apt's defaults), and rsync,
# which moves the state onto its partition (deploy/state.sh).
INSTALL_APT=(python3-argcomplete i2c-tools sqlite3 ca-certificates rsync)
# What building the package here needs (not with --deb): pip fetches the locked wheels,
# argcomplete writes the completion script, and the man pages import the application,
# which imports Debian's numpy (the package's own dependency, not in its venv).
BUILD_APT=(python3 python3-pip python3-argcomplete python3-numpy)
# PI_APT (Raspberry Pi OS's packages, checked before apt-get install).
# shellcheck source=deploy/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/packages.sh"

DRY_RUN=0
READONLY_ROOT=0
WRITABLE_ROOT=0
PKG_DEB=""      # --deb, or the package built here
PKG_GIVEN=0
PKG_KEEP=0      # a newer package than the checkout is installed: left as it is
CHANGES=()
SKIPPED=()

changed() { CHANGES+=("$1"); say "changed: $1"; }
skipped() { SKIPPED+=("$1"); say "skipped (not a Raspberry Pi): $1"; }
install_fail() { echo "install: $1" >&2; exit "${2:-1}"; }

# Run a command, or print it under --dry-run.
act() {
    if [ "$DRY_RUN" = 1 ]; then
        printf 'would run: %s\n' "$*"
    else
        "$@"
    fi
}

is_pi() {
    case "${PASSGATE_ASSUME_PI:-}" in 1) return 0 ;; 0) return 1 ;; esac
    [ -f /etc/rpi-issue ] || grep -qs "Raspberry Pi" /proc/device-tree/model
}

apt_get_install() {  # packages or ./files...
    act env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# The packages beside passgate's own: what it recommends, and on a Pi, Raspberry Pi OS's.
step_packages() {
    local want=("${INSTALL_APT[@]}") missing pi=() pi_missing
    if is_pi; then
        read -r -a pi <<<"$(pi_apt_wanted | tr "\n" " ")"
        want+=("${pi[@]}")
        if [ "$NO_PI_CAMERA" = 1 ]; then
            SKIPPED+=("apt packages ${PI_CAMERA_APT[*]}")
            say "skipped (--no-pi-camera): apt packages ${PI_CAMERA_APT[*]}"
        fi
    else
        skipped "apt packages ${PI_APT[*]}"
    fi
    read -r -a missing <<<"$(missing_packages "${want[@]}" | tr "\n" " ")"
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_lists
    # Stop before apt-get install if a Pi package is not to be had (exit 2, not apt's 100).
    read -r -a pi_missing <<<"$(missing_packages "${pi[@]}" | tr "\n" " ")"
    if [ ${#pi_missing[@]} -gt 0 ]; then check_pi_packages "${pi_missing[@]}"; fi
    apt_get_install "${missing[@]}" || install_fail "apt-get could not install: ${missing[*]}"
    changed "apt packages installed: ${missing[*]}"
}

APT_UPDATED=0
apt_lists() {
    [ "$APT_UPDATED" = 1 ] && return 0
    act apt-get update -qq || install_fail "apt-get update failed (network? sources?)"
    APT_UPDATED=1
}

# The .deb to install: --deb as given, else built from this checkout into dist/ (a dry run
# does not build: it names the checkout's version and what it would run).
step_build() {
    if [ "$PKG_GIVEN" = 1 ]; then
        [ -f "$PKG_DEB" ] || install_fail "--deb $PKG_DEB: no such file" 2
        [ "$(dpkg-deb -f "$PKG_DEB" Package 2>/dev/null)" = passgate ] \
            || install_fail "--deb $PKG_DEB: not a passgate package" 2
        local arch want
        arch=$(dpkg-deb -f "$PKG_DEB" Architecture)
        want=$(dpkg --print-architecture)
        [ "$arch" = "$want" ] || install_fail "--deb $PKG_DEB is for $arch, this system is $want" 2
        PKG_DEB=$(readlink -f "$PKG_DEB")
        return 0
    fi
    local arch version have
    arch=$(dpkg --print-architecture)
    version=$(pkg_source_version)
    have=$(pkg_installed)
    if [ "${have%% *}" = installed ] && dpkg --compare-versions "${have#* }" gt "$version"; then
        # The fleet's updater installed a newer release since this checkout: the package is
        # kept (not built, not downgraded) and only the Pi steps below run.
        say "passgate ${have#* } is installed, newer than this checkout's $version (an update from the fleet): kept"
        PKG_KEEP=1
        return 0
    fi
    local missing
    read -r -a missing <<<"$(missing_packages "${BUILD_APT[@]}" | tr "\n" " ")"
    if [ ${#missing[@]} -gt 0 ]; then
        apt_lists
        apt_get_install "${missing[@]}" || install_fail "apt-get could not install: ${missing[*]}"
        changed "apt packages installed (to build the package): ${missing[*]}"
    fi
    if [ "$DRY_RUN" = 1 ]; then
        printf 'would run: %s package --arch %s --out %s\n' "$HERE/setup.sh" "$arch" "$HERE/dist"
        PKG_DEB="$HERE/dist/passgate_${version}_${arch}.deb"
        return 0
    fi
    say "building the package passgate $version ($arch) from this checkout"
    "$HERE/setup.sh" package --arch "$arch" --out "$HERE/dist" >/dev/null \
        || install_fail "building the package failed (./setup.sh package): nothing was installed"
    PKG_DEB="$HERE/dist/passgate_${version}_${arch}.deb"
    [ -f "$PKG_DEB" ] || install_fail "the build did not make $PKG_DEB"
}

pkg_source_version() {
    python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])' 2>/dev/null \
        || sed -n 's/^version = "\(.*\)"/\1/p' "$HERE/pyproject.toml" | head -1
}

# "installed VERSION" when dpkg has passgate fully installed, else what dpkg says (or nothing).
pkg_installed() {
    dpkg-query -W -f='${db:Status-Status} ${Version}' passgate 2>/dev/null || true
}

# Same version, same files, same dependencies as the installed package?
pkg_same() {  # deb
    local deb=$1 version
    version=$(dpkg-deb -f "$deb" Version)
    [ "$(pkg_installed)" = "installed $version" ] || return 1
    cmp -s <(dpkg-deb -I "$deb" md5sums) /var/lib/dpkg/info/passgate.md5sums || return 1
    [ "$(dpkg-deb -f "$deb" Depends)" = "$(dpkg-query -W -f='${Depends}' passgate)" ]
}

# An install by the old rsync+pip path: its source, its venv, its copies of the units in
# /etc (which would shadow the package's) and its command link. Cleared before the package
# goes in, so nothing of it is left beside the package's files. /etc/passgate and the
# state stay (the package keeps them).
step_old_install() {
    local dpkg_has=0 u old=()
    dpkg-query -W -f='${db:Status-Status}' passgate 2>/dev/null | grep -qx installed && dpkg_has=1
    [ "$dpkg_has" = 1 ] && return 0
    # The old path always made the venv; a source folder alone is an image's staged install
    # (deploy/image.sh), which is running this very script: left alone.
    [ -d "$PG_PREFIX/venv" ] || return 0
    old+=("$PG_PREFIX/venv")
    # The old source folder goes too, unless this script runs from it (the old docs said
    # `sudo /opt/passgate/src/setup.sh install`): then it stays, as a checkout.
    case "$(readlink -f "$HERE")/" in
        "$PG_PREFIX/src/"*) ;;
        *) [ -d "$PG_PREFIX/src" ] && old+=("$PG_PREFIX/src") ;;
    esac
    [ -L /usr/local/bin/passgate ] && old+=(/usr/local/bin/passgate)
    for u in "${PG_UNITS[@]}"; do [ -f "/etc/systemd/system/$u" ] && old+=("/etc/systemd/system/$u"); done
    [ -f /etc/systemd/system.conf.d/passgate-watchdog.conf ] && old+=(/etc/systemd/system.conf.d/passgate-watchdog.conf)
    [ ${#old[@]} -eq 0 ] && return 0
    # Their enablement links (made by `systemctl enable` of the copies) go with them; the
    # package's postinst enables its own units. Found directly: systemctl may not be
    # installed yet (the package brings systemd) and would not know a unit file that is gone.
    local link
    for link in /etc/systemd/system/*.wants/passgate-*; do
        [ -L "$link" ] || continue
        case "$(readlink "$link")" in /etc/systemd/system/passgate-*) old+=("$link") ;; esac
    done
    act rm -rf "${old[@]}"
    changed "the old install (rsync+pip) cleared away: ${old[*]}"
}

step_package() {
    local have version
    [ "$PKG_KEEP" = 1 ] && return 0
    have=$(pkg_installed)
    if [ -f "$PKG_DEB" ]; then
        version=$(dpkg-deb -f "$PKG_DEB" Version)
        if pkg_same "$PKG_DEB"; then return 0; fi
    else  # a dry run without a build: the checkout's version
        version=$(pkg_source_version)
        if [ "$have" = "installed $version" ]; then
            say "passgate $version is installed (the checkout's version; the build would show whether its files differ)"
            return 0
        fi
    fi
    local old=${have#* } allow=()
    if [ "${have%% *}" = installed ] && dpkg --compare-versions "$version" lt "$old"; then
        install_fail "passgate $old is installed and $PKG_DEB is older ($version): not downgraded (the updater's rollback is the way back)" 2
    fi
    # A package left half-installed by a failed install may be replaced by any good one.
    if [ -n "$have" ] && [ "${have%% *}" != installed ] && [ "${have%% *}" != not-installed ]; then
        allow=(--allow-downgrades)
    fi
    apt_lists
    apt_get_install "${allow[@]}" "$PKG_DEB" || install_fail "apt-get could not install $PKG_DEB"
    if [ "$DRY_RUN" = 0 ] && [ "$(pkg_installed)" != "installed $version" ]; then
        install_fail "apt-get finished but dpkg says passgate is '$(pkg_installed)', not installed $version"
    fi
    changed "package passgate $version installed${have:+ (was: $have)}"
}

ensure_dir() {  # path owner group mode (the state partition's folders, deploy/state.sh)
    local path=$1 owner=$2 group=$3 mode=$4
    if [ ! -d "$path" ]; then
        act install -d -o "$owner" -g "$group" -m "$mode" "$path"
        changed "directory $path created"
        return 0
    fi
    if [ "$(stat -c '%U:%G %a' "$path")" != "$owner:$group ${mode#0}" ]; then
        act chown "$owner:$group" "$path"
        act chmod "$mode" "$path"
        changed "directory $path ownership/mode set to $owner:$group $mode"
    fi
}

config_txt() {
    local d
    for d in "${PG_BOOT_DIRS[@]}"; do [ -f "$d/config.txt" ] && { echo "$d/config.txt"; return; }; done
}

step_hardware() {
    if ! is_pi; then
        skipped "enable I2C (raspi-config nonint do_i2c 0)"
        skipped "enable the camera (camera_auto_detect=1 in config.txt)"
        return 0
    fi
    if [ "$(raspi-config nonint get_i2c)" != 0 ]; then
        act raspi-config nonint do_i2c 0
        changed "I2C enabled"
    fi
    local cfg
    cfg=$(config_txt)
    if [ -n "$cfg" ] && ! grep -q '^camera_auto_detect=1' "$cfg"; then
        act sh -c "echo camera_auto_detect=1 >> '$cfg'"
        changed "camera auto-detect enabled in $cfg"
    fi
}

install_main() {
    local state_device="" want_state=0 check_only=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --deb) PKG_DEB=${2:-}; PKG_GIVEN=1
                [ -n "$PKG_DEB" ] || { echo "install: --deb needs a file" >&2; exit 2; }
                shift ;;
            --deb=*) PKG_DEB=${1#*=}; PKG_GIVEN=1 ;;
            --no-pi-camera) NO_PI_CAMERA=1 ;;
            --readonly-root) READONLY_ROOT=1; want_state=1 ;;
            --writable-root) WRITABLE_ROOT=1 ;;
            --state-device) state_device=${2:-}; want_state=1
                [ -n "$state_device" ] || { echo "install: --state-device needs a device" >&2; exit 2; }
                shift ;;
            --state-device=*) state_device=${1#*=}; want_state=1 ;;
            *) echo "install: unknown option $1" >&2; exit 2 ;;
        esac
        shift
    done
    if [ "$READONLY_ROOT" = 1 ] && [ "$WRITABLE_ROOT" = 1 ]; then
        echo "install: --readonly-root or --writable-root, not both" >&2
        exit 2
    fi
    if [ "$(id -u)" -ne 0 ] && [ "$DRY_RUN" = 0 ]; then
        echo "install: run as root (sudo ./setup.sh install)" >&2
        exit 2
    fi
    # Refuse before anything is changed: --readonly-root without a state partition.
    if [ "$want_state" = 1 ]; then resolve_state_device "$state_device"; fi
    if overlay_now && [ "$WRITABLE_ROOT" = 1 ]; then
        # Anything but the overlay switch would be written to RAM: the rest after the reboot.
        step_overlay
        say "the root is read-only until the reboot: run 'sudo ./setup.sh install' after it for the rest"
        install_summary
        return 0
    fi
    if overlay_now && [ "$DRY_RUN" = 0 ]; then
        # The root is an overlay in RAM: only look, and refuse if there is anything to change.
        DRY_RUN=1
        check_only=1
    fi
    # The Pi packages first: a missing repository stops the install (exit 2) before apt
    # installs anything, the build's tools included.
    step_packages
    step_build
    step_old_install
    step_package
    step_state
    step_hardware
    step_overlay
    if [ "$check_only" = 1 ] && [ ${#CHANGES[@]} -gt 0 ]; then
        echo "install: the root is read-only now (overlay): ${#CHANGES[@]} change(s) would be lost at the next boot; run 'sudo ./setup.sh install --writable-root', reboot, and run this again" >&2
        exit 1
    fi
    install_summary
}

install_summary() {
    if [ ${#CHANGES[@]} -eq 0 ]; then
        say "nothing to change: passgate is installed and up to date"
    elif [ "$DRY_RUN" = 1 ]; then
        say "dry run: ${#CHANGES[@]} change(s) would be made"
    else
        say "done: ${#CHANGES[@]} change(s)"
    fi
    if [ ${#SKIPPED[@]} -gt 0 ]; then
        say "hardware steps skipped: ${#SKIPPED[@]} (run on the Pi to apply them)"
    fi
}
