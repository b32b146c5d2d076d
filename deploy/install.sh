# shellcheck shell=bash
# `sudo ./setup.sh install`: provision a checkpoint. Sourced by setup.sh; not run directly.
#
# Each step checks before it acts and reports only what it changed, so a second run prints
# "nothing to change". --dry-run prints what would be done and changes nothing.
# Hardware steps (I2C, camera, picamera2, lgpio) run only on a Raspberry Pi; elsewhere (a
# chroot in CI, a laptop) they are skipped and listed. PASSGATE_ASSUME_PI=1 / =0 overrides
# the detection.
#
#   --dry-run          print what would be done, change nothing
#   --readonly-root    the state on its own partition (PGSTATE, or --state-device), then
#                      Raspberry Pi OS's overlay on: the root is read-only from the next boot
#   --writable-root    the overlay off again (the state stays on its partition)
#   --state-device DEV the state partition to use (with --readonly-root, or alone: state
#                      partition without the overlay)
#   --no-pi-camera     on a Pi, leave out the camera packages (python3-picamera2, python3-libcamera)
#                      that only Raspberry Pi OS's repository has: camera.source files or webcam
# The state partition and the overlay are deploy/state.sh.

PG_PREFIX=${PASSGATE_PREFIX:-/opt/passgate}
PG_ETC=/etc/passgate
PG_STATE=/var/lib/passgate
PG_SYNC_STATE=/var/lib/passgate-sync
# shellcheck source=deploy/state.sh
. "$(dirname "${BASH_SOURCE[0]}")/state.sh"
# passgate-firstboot does nothing unless /boot/firmware/passgate-device.toml exists.
PG_UNITS=(passgate-scanner.service passgate-sync.service passgate-firstboot.service)
INSTALL_APT=(python3 python3-venv python3-pip libzbar0 i2c-tools sqlite3 rsync ca-certificates systemd)
# PI_APT (Raspberry Pi OS's packages, checked before apt-get install) and the venv's numpy.
# shellcheck source=deploy/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/packages.sh"

DRY_RUN=0
READONLY_ROOT=0
WRITABLE_ROOT=0
CHANGES=()
SKIPPED=()

changed() { CHANGES+=("$1"); say "changed: $1"; }
skipped() { SKIPPED+=("$1"); say "skipped (not a Raspberry Pi): $1"; }

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
    act apt-get update -qq
    # Stop before apt-get install if a Pi package is not to be had (exit 2, not apt's 100).
    read -r -a pi_missing <<<"$(missing_packages "${pi[@]}" | tr "\n" " ")"
    if [ ${#pi_missing[@]} -gt 0 ]; then check_pi_packages "${pi_missing[@]}"; fi
    act env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    changed "apt packages installed: ${missing[*]}"
}

ensure_group() {
    getent group "$1" >/dev/null && return 0
    act groupadd --system "$1"
    changed "group $1 created"
}

ensure_user() {  # name home groups...
    local name=$1 home=$2 g
    shift 2
    if ! getent passwd "$name" >/dev/null; then
        act useradd --system --user-group --home-dir "$home" --no-create-home \
            --shell /usr/sbin/nologin --comment "passgate" "$name"
        changed "user $name created"
    fi
    for g in "$@"; do
        if ! id -nG "$name" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
            act usermod -a -G "$g" "$name"
            changed "user $name added to group $g"
        fi
    done
}

step_users() {
    # The scanner needs the camera (video), GPIO (gpio) and I2C (i2c); on Raspberry Pi OS
    # these groups exist, elsewhere they are created so the units still resolve.
    local g
    for g in video gpio i2c; do ensure_group "$g"; done
    ensure_user passgate "$PG_STATE" video gpio i2c
    # The sync agent: network, no devices; group passgate to share the journal.
    ensure_user passgate-sync "$PG_SYNC_STATE" passgate
}

ensure_dir() {  # path owner group mode
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

step_dirs() {
    ensure_dir "$PG_PREFIX" root root 0755
    ensure_dir "$PG_ETC" root passgate 0750
    ensure_dir "$PG_ETC/passgate.d" root passgate 0750
    # setgid: files made by either service belong to group passgate.
    ensure_dir "$PG_STATE" passgate passgate 2770
    ensure_dir "$PG_SYNC_STATE" passgate-sync passgate-sync 0700
}

# Files that are not part of the installed source (pip also builds into build/ and *.egg-info).
RSYNC_EXCLUDES=(--exclude .git --exclude .venv --exclude __pycache__ --exclude '*.egg-info'
    --exclude build --exclude state --exclude sim-output --exclude .pytest_cache --exclude .hypothesis)

# What is installed: in a git checkout the tracked files only (as in their working tree), so
# a stray device file, token or image lying in the checkout never reaches /opt/passgate/src
# (world-readable) or a flashed card; elsewhere (an unpacked tarball) the tree minus build
# folders. Prints the folder to copy from.
source_tree() {
    if ! git -C "$HERE" rev-parse --git-dir >/dev/null 2>&1; then
        echo "$HERE"
        return 0
    fi
    local stage
    stage=$(mktemp -d /tmp/passgate-src.XXXXXX)
    (cd "$HERE" && git ls-files -z --cached \
        | rsync -a --from0 --ignore-missing-args --files-from=- ./ "$stage/")
    echo "$stage"
}

step_code() {
    local src="$PG_PREFIX/src" venv="$PG_PREFIX/venv" stamp="$PG_PREFIX/venv/.passgate-src"
    local diff="new" from
    from=$(source_tree)
    if [ -d "$src" ]; then
        diff=$(rsync -a --omit-dir-times --delete --dry-run --itemize-changes \
            "${RSYNC_EXCLUDES[@]}" "$from/" "$src/")
    fi
    if [ -n "$diff" ]; then
        act mkdir -p "$src"
        act rsync -a --omit-dir-times --delete "${RSYNC_EXCLUDES[@]}" "$from/" "$src/"
        changed "source copied to $src"
    fi
    if [ "$from" != "$HERE" ]; then rm -rf "$from"; fi
    if [ ! -x "$venv/bin/python" ]; then
        act python3 -m venv --system-site-packages "$venv"
        changed "virtual environment $venv created (with system site packages for picamera2)"
    fi
    # One numpy when the system has one (deploy/packages.sh): pinned for pip, none in the venv.
    local constraint="$venv/passgate-constraints.txt" pin=() numpy_changed=0 sys_numpy own
    sys_numpy=$(system_numpy | sed -n 1p)
    if update_numpy_constraint "$constraint"; then
        numpy_changed=1
        changed "pip constraint $constraint: ${sys_numpy:+numpy==}${sys_numpy:-none (no system numpy)}"
    fi
    if [ -n "$sys_numpy" ]; then
        pin=(-c "$constraint")
        own=$(venv_own_numpy "$venv")
        if [ -n "$own" ]; then
            act "$venv/bin/pip" uninstall -y -q --disable-pip-version-check numpy
            changed "numpy removed from the venv ($own): the system's numpy $sys_numpy is used"
            numpy_changed=1
        fi
    fi
    if [ -n "$diff" ] || [ ! -f "$stamp" ] || [ "$numpy_changed" = 1 ]; then
        act "$venv/bin/pip" install -q --disable-pip-version-check "${pin[@]}" "$src"
        if [ "$DRY_RUN" = 0 ]; then date -u +%FT%TZ >"$stamp"; fi
        changed "passgate installed into $venv"
    fi
}

step_config() {
    local example="$HERE/firmware/passgate/data/passgate.example.toml"
    if [ ! -f "$PG_ETC/passgate.toml" ]; then
        # Never overwritten once present: it is the site's file.
        act install -o root -g passgate -m 0640 "$example" "$PG_ETC/passgate.toml"
        changed "config $PG_ETC/passgate.toml created from the example"
    fi
}

step_units() {
    local u dest=/etc/systemd/system
    for u in "${PG_UNITS[@]}"; do
        if ! cmp -s "$HERE/systemd/$u" "$dest/$u"; then
            act install -D -m 0644 "$HERE/systemd/$u" "$dest/$u"
            changed "unit $u installed"
        fi
    done
    local wd=/etc/systemd/system.conf.d/passgate-watchdog.conf
    if ! cmp -s "$HERE/systemd/passgate-watchdog.conf" "$wd"; then
        act install -D -m 0644 "$HERE/systemd/passgate-watchdog.conf" "$wd"
        changed "hardware watchdog enabled (RuntimeWatchdogSec=14s)"
    fi
    for u in "${PG_UNITS[@]}"; do
        if [ "$(systemctl is-enabled "$u" 2>/dev/null || true)" != enabled ]; then
            # systemctl enable works offline (in a chroot or image) as well as on a live system.
            act systemctl enable --quiet "$u"
            changed "unit $u enabled"
        fi
    done
    if [ ${#CHANGES[@]} -gt 0 ] && [ -d /run/systemd/system ]; then
        act systemctl daemon-reload
    fi
}

# `passgate` on the PATH (sudo's too), for technicians: the venv's entry point.
step_cli() {
    local link=/usr/local/bin/passgate target="$PG_PREFIX/venv/bin/passgate"
    [ "$(readlink "$link" 2>/dev/null)" = "$target" ] && return 0
    act mkdir -p "$(dirname "$link")"
    act ln -sfn "$target" "$link"
    changed "command $link -> $target"
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
    step_packages
    step_users
    step_dirs
    step_code
    step_cli
    step_config
    step_units
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
