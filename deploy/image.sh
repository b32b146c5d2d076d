# shellcheck shell=bash
# `sudo ./setup.sh image --base IMAGE.img --config DEVICE.toml --out OUT.img [--bundle FILE]`:
# a stock Raspberry Pi OS image and a device file -> a ready-to-flash image. Sourced by
# setup.sh; not run directly. docs/provisioning.md explains the result.
#
# The boot partition (FAT) is written with mtools, never mounted (no vfat driver needed):
# the device file, the bundle, the host name for the image's first-boot mechanism (custom.toml
# on Bookworm, cloud-init user-data/meta-data on Trixie), I2C and camera in config.txt. The
# root partition (ext4) is mounted through a loop device at its offset and passgate installed
# in it: the package for the image's architecture is built here (`./setup.sh package --arch`,
# no target code runs) and installed with `setup.sh install --deb` (the one install path) in
# a chroot when the image runs on this machine (same architecture, or qemu-user through
# binfmt), else staged with a one-time unit that installs it at first boot (which then needs
# network for the package's Debian dependencies only). The image is built under OUT.part and renamed at the end.
# The partition table, mtools, the loop devices and the state partition are deploy/image-disk.sh.
#
#   --bundle FILE   initial signed bundle, copied beside the device file
#   --grow SIZE     grow the root partition by SIZE (e.g. 1G); default: only if it has less
#                   than 900 MiB free for the install
#   --stage         do not run the install here: stage it for the first boot
#   --state-partition SIZE
#                   append an ext4 partition labelled PGSTATE (e.g. 1G) for the checkpoint's
#                   state, with the root's fstab and folders set up for it, so that the
#                   read-only root (`install --readonly-root` on the device) keeps the state
#   --host-ca       trust this machine's CA bundle inside the image while installing (for a
#                   TLS-inspecting proxy; removed again afterwards)
#   --force         overwrite OUT

IMG_DEVICE_FILE=passgate-device.toml
IMG_MIN_FREE_MB=900
IMG_TOOLS=(mtools fdisk e2fsprogs rsync)
IMG_MOUNTS=()
IMG_LOOP=""
IMG_STATE_LOOP=""
IMG_WORK=""
IMG_PART=""

img_note() { say "image: $1"; }
img_fail() { say "image: $1"; exit "${2:-1}"; }

img_cleanup() {
    local i
    for ((i = ${#IMG_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${IMG_MOUNTS[i]}" 2>/dev/null || umount -l "${IMG_MOUNTS[i]}" || true
    done
    IMG_MOUNTS=()
    if [ -n "$IMG_LOOP" ]; then losetup -d "$IMG_LOOP" || true; IMG_LOOP=""; fi
    if [ -n "$IMG_STATE_LOOP" ]; then losetup -d "$IMG_STATE_LOOP" || true; IMG_STATE_LOOP=""; fi
    if [ -n "$IMG_WORK" ]; then rm -rf "$IMG_WORK"; IMG_WORK=""; fi
    if [ -n "$IMG_PART" ]; then rm -f "$IMG_PART"; IMG_PART=""; fi  # a failed build leaves nothing
}

img_mount() {  # mount ARGS... TARGET (the last argument is remembered for the clean-up)
    mount "$@" || img_fail "cannot mount ${*: -1}"
    IMG_MOUNTS+=("${*: -1}")
}

img_umount() {  # a path mounted with img_mount
    local m kept=()
    umount "$1" || img_fail "cannot unmount $1"
    for m in "${IMG_MOUNTS[@]}"; do [ "$m" = "$1" ] || kept+=("$m"); done
    IMG_MOUNTS=("${kept[@]}")
}

# shellcheck source=deploy/image-disk.sh
. "$(dirname "${BASH_SOURCE[0]}")/image-disk.sh"

# Debian architecture of the root (dpkg's own package record), and of this machine.
img_arch() {
    awk '/^Package: dpkg$/ { p = 1 } p && /^Architecture:/ { print $2; exit }' \
        "$1/var/lib/dpkg/status" 2>/dev/null
}
img_host_arch() {
    dpkg --print-architecture 2>/dev/null && return
    case "$(uname -m)" in x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv7l) echo armhf ;; *) uname -m ;; esac
}

# Can this machine run the image's binaries through qemu-user and binfmt_misc? Sets
# IMG_QEMU to the interpreter to copy into the root when binfmt does not preload it (no F flag).
img_qemu_ready() {
    local name entry
    case "$1" in arm64) name=aarch64 ;; armhf | armel) name=arm ;; *) return 1 ;; esac
    entry=/proc/sys/fs/binfmt_misc/qemu-$name
    [ -r "$entry" ] && [ "$(head -n1 "$entry")" = enabled ] || return 1
    IMG_QEMU=$(sed -n 's/^interpreter //p' "$entry")
    [ -x "$IMG_QEMU" ] || return 1
    if sed -n 's/^flags: //p' "$entry" | grep -q F; then IMG_QEMU=""; fi
    return 0
}

# The first-boot mechanism of the base image: cloud-init (Trixie, late 2025), custom.toml
# (Bookworm's raspberrypi-sys-mods), or none (write /etc/hostname directly).
img_mechanism() {
    if img_fat_has user-data || img_fat_has meta-data || [ -e "$IMG_ROOT/etc/cloud/cloud.cfg" ]; then
        echo cloud-init
    elif img_fat_has custom.toml || [ -e "$IMG_ROOT/usr/lib/raspberrypi-sys-mods/init_config" ]; then
        echo custom.toml
    else
        echo none
    fi
}

# Merge the host name into one first-boot file without clobbering what is there. Prints
# "added", "same" or "conflict: <what is there>"; the file is rewritten only for "added".
img_merge_hostname() {  # KIND FILE HOSTNAME
    "$IMG_PY" - "$@" <<'EOF'
import re, sys, tomllib
kind, path, name = sys.argv[1:]
try:
    text = open(path, encoding="utf-8").read()
except FileNotFoundError:
    text = ""
add = ""
if kind == "custom.toml":
    doc = tomllib.loads(text)
    have = doc.get("system", {}).get("hostname")
    if have is None:
        if "config_version" not in doc:
            text = "config_version = 1\n" + text
        if "system" in doc:  # a [system] table without hostname: add the key right under it
            text = re.sub(r"(?m)^(\s*\[system\][^\n]*\n)", lambda m: m.group(1)
                          + f'hostname = "{name}"\n', text, count=1)
        else:
            add = f'\n[system]\nhostname = "{name}"\n'
        new = text + add
        assert tomllib.loads(new)["system"]["hostname"] == name
else:  # cloud-init YAML: user-data (hostname:) or meta-data (local-hostname:)
    key = "hostname" if kind == "user-data" else "local-hostname"
    m = re.search(rf"(?m)^{key}:\s*['\"]?([^'\"\s#]+)", text)
    have = m.group(1) if m else None
    body = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if kind == "user-data" and body and not text.startswith("#cloud-config"):
        print("conflict: not a #cloud-config file")
        sys.exit()
    if kind == "user-data" and re.search(r"(?m)^preserve_hostname:\s*true", text):
        print("conflict: preserve_hostname is true")
        sys.exit()
    if have is None:
        head = "#cloud-config\n" if kind == "user-data" and not text.startswith("#cloud-config") else ""
        sep = "" if not text or text.endswith("\n") else "\n"
        add = f"{key}: {name}\n"
        if kind == "meta-data" and not re.search(r"(?m)^instance-id:", text):
            add += f"instance-id: passgate-{name}\n"  # NoCloud wants one
        if kind == "user-data" and not re.search(r"(?m)^manage_etc_hosts:", text):
            add += "manage_etc_hosts: localhost\n"  # the 127.0.1.1 line follows the new name
        new = head + text + sep + "# passgate: the device id\n" + add
if have is None:
    open(path, "w", encoding="utf-8").write(new)
    print("added")
else:
    print("same" if have == name else f"conflict: {have}")
EOF
}

img_set_hostname() {  # MECHANISM HOSTNAME
    local mech=$1 name=$2 f res
    case "$mech" in
        custom.toml) set -- custom.toml ;;
        cloud-init) set -- user-data meta-data ;;
        none)
            echo "$name" >"$IMG_ROOT/etc/hostname"
            sed -i "s/^127\.0\.1\.1\s.*/127.0.1.1\t$name/" "$IMG_ROOT/etc/hosts" 2>/dev/null || true
            grep -q "^127\.0\.1\.1" "$IMG_ROOT/etc/hosts" || printf '127.0.1.1\t%s\n' "$name" >>"$IMG_ROOT/etc/hosts"
            img_note "host name $name written to /etc/hostname (no first-boot mechanism found)"
            return 0 ;;
    esac
    for f in "$@"; do
        if img_fat_has "$f"; then img_fat_get "$f" >"$IMG_WORK/$f"; else : >"$IMG_WORK/$f"; fi
        res=$(img_merge_hostname "$f" "$IMG_WORK/$f" "$name") || img_fail "$f on the boot partition: cannot merge the host name"
        case "$res" in
            added) img_fat_put "$IMG_WORK/$f" "$f"; img_note "host name $name set in $f ($mech)" ;;
            same) img_note "host name $name already in $f" ;;
            *) img_note "WARNING: $f left as it is ($res); the host name stays what it says" ;;
        esac
    done
    if [ "$mech" = custom.toml ] && ! img_fat_get cmdline.txt 2>/dev/null | grep -q "raspberrypi-sys-mods/firstboot"; then
        img_note "WARNING: cmdline.txt does not run raspberrypi-sys-mods/firstboot (an image that was already booted?): custom.toml may be ignored"
    fi
}

# I2C and the camera, as raspi-config would set them (the chroot is not a Pi).
img_hardware() {
    local cfg="$IMG_WORK/config.txt" changed=0 line
    if img_fat_has config.txt; then
        img_fat_get config.txt >"$cfg"
        for line in dtparam=i2c_arm=on camera_auto_detect=1; do
            if ! grep -q "^${line%%=*}=${line#*=}" "$cfg"; then
                printf '%s\n' "$line" >>"$cfg"
                changed=1
            fi
        done
        if [ "$changed" = 1 ]; then img_fat_put "$cfg" config.txt; img_note "I2C and camera enabled in config.txt"; fi
    fi
    if ! grep -qs "^i2c[-_]dev" "$IMG_ROOT/etc/modules"; then
        echo i2c-dev >>"$IMG_ROOT/etc/modules"
        img_note "i2c-dev added to /etc/modules"
    fi
}

img_copy_source() {  # DEST: the tracked files only (never a stray device file or token)
    mkdir -p "$1"
    if git -C "$HERE" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$HERE" && git ls-files -z --cached \
            | rsync -a --from0 --ignore-missing-args --files-from=- ./ "$1/") \
            || img_fail "cannot copy the source"
    else
        rsync -a --exclude .git --exclude .venv --exclude __pycache__ --exclude '*.egg-info' \
            --exclude build --exclude dist --exclude state --exclude sim-output "$HERE/" "$1/"
    fi
}

# The package for the image's architecture, built on this machine: prints its path.
IMG_DEB=""
img_build_package() {  # arch
    local out=$IMG_WORK/dist
    mkdir -p "$out"
    IMG_DEB=$("$HERE/setup.sh" package --arch "$1" --out "$out" | tail -n1) \
        || img_fail "building the $1 package failed (./setup.sh package --arch $1)"
    [ -f "$IMG_DEB" ] || img_fail "the package build made no .deb"
    img_note "package built: $(basename "$IMG_DEB")"
}

img_install_chroot() {
    local r=$IMG_ROOT env_=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
    img_mount -t proc proc "$r/proc"
    img_mount -t sysfs sys "$r/sys"
    img_mount --bind /dev "$r/dev"
    img_mount --bind /dev/pts "$r/dev/pts"
    if [ -n "$IMG_QEMU" ]; then install -D -m 0755 "$IMG_QEMU" "$r$IMG_QEMU"; fi
    # Network during the install: this machine's resolver; no services started by apt.
    mv "$r/etc/resolv.conf" "$r/etc/resolv.conf.passgate-image" 2>/dev/null || true
    cp -L /etc/resolv.conf "$r/etc/resolv.conf"
    if [ ! -e "$r/usr/sbin/policy-rc.d" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
        chmod 755 "$r/usr/sbin/policy-rc.d"
        touch "$IMG_WORK/policy"
    fi
    local ca=$r/usr/local/share/ca-certificates/passgate-image-host.crt
    if [ "$IMG_HOST_CA" = 1 ]; then
        install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ca"
        if [ -e "$r/etc/ssl/certs/ca-certificates.crt" ]; then
            cp -a "$r/etc/ssl/certs/ca-certificates.crt" "$IMG_WORK/ca.orig"
        fi
        install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
    fi
    img_copy_source "$r/var/tmp/passgate-src"
    mkdir -p "$r/var/tmp/passgate-src/dist"
    cp "$IMG_DEB" "$r/var/tmp/passgate-src/dist/"
    local rc=0
    # PASSGATE_ASSUME_PI=0: raspi-config cannot work in a chroot; img_hardware does its part.
    # The Pi packages first: they bring the system numpy, which the install then gives the
    # venv instead of a numpy of its own (deploy/packages.sh).
    if [ -e "$r/etc/rpi-issue" ]; then
        if chroot "$r" "${env_[@]}" apt-get update -qq && chroot "$r" "${env_[@]}" \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${PI_APT[@]}" >/dev/null; then
            img_note "Raspberry Pi packages installed: ${PI_APT[*]}"
        else
            rc=$?
        fi
    fi
    img_note "installing in a chroot: the 'not a Raspberry Pi' steps below are done by this tool"
    if [ "$rc" = 0 ]; then
        chroot "$r" "${env_[@]}" PASSGATE_ASSUME_PI=0 /var/tmp/passgate-src/setup.sh install \
            --deb "/var/tmp/passgate-src/dist/$(basename "$IMG_DEB")" || rc=$?
    fi
    chroot "$r" "${env_[@]}" apt-get clean || true
    rm -rf "$r/var/tmp/passgate-src"
    if [ "$IMG_HOST_CA" = 1 ]; then
        rm -f "$ca"
        if [ -e "$IMG_WORK/ca.orig" ]; then cp -a "$IMG_WORK/ca.orig" "$r/etc/ssl/certs/ca-certificates.crt"; fi
        chroot "$r" "${env_[@]}" update-ca-certificates --fresh >/dev/null 2>&1 || true
    fi
    if [ -e "$IMG_WORK/policy" ]; then rm -f "$r/usr/sbin/policy-rc.d"; fi
    rm -f "$r/etc/resolv.conf"
    mv "$r/etc/resolv.conf.passgate-image" "$r/etc/resolv.conf" 2>/dev/null || true
    if [ -n "$IMG_QEMU" ]; then rm -f "$r$IMG_QEMU"; fi
    [ "$rc" = 0 ] || img_fail "setup.sh install failed inside the image (exit $rc)"
    img_note "passgate installed in the image (chroot${IMG_QEMU_USED:+, $IMG_QEMU_USED})"
}

# A one-time unit that runs setup.sh install on the device, then starts provisioning and the
# services. It stops being started once the venv exists.
img_install_stage() {
    local r=$IMG_ROOT unit=passgate-install-firstboot.service
    img_copy_source "$r/opt/passgate/src"
    mkdir -p "$r/opt/passgate/src/dist"
    cp "$IMG_DEB" "$r/opt/passgate/src/dist/"
    local deb_name
    deb_name=$(basename "$IMG_DEB")
    cat >"$r/etc/systemd/system/$unit" <<EOF
# Written by \`setup.sh image\`: the image was built on a machine that could not run its
# binaries, so the package built for it is installed here, once, at first boot. This needs
# network (for the package's Debian dependencies).
[Unit]
Description=passgate one-time installation at first boot (needs network)
ConditionPathExists=!/opt/passgate/venv/bin/passgate
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/opt/passgate/src/setup.sh install --deb /opt/passgate/src/dist/$deb_name
ExecStartPost=/bin/systemctl start --no-block passgate-firstboot.service passgate-scanner.service passgate-sync.service
Restart=on-failure
RestartSec=60s
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
EOF
    mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
    ln -sf "/etc/systemd/system/$unit" "$r/etc/systemd/system/multi-user.target.wants/$unit"
    img_note "source staged in /opt/passgate/src; $unit installs passgate at FIRST BOOT, which NEEDS NETWORK"
}

image_main() {
    local base="" cfg="" out="" bundle="" grow="" stage=0 force=0 state_size="" state_bytes=""
    IMG_HOST_CA=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --base) base=${2:-}; shift ;;
            --config) cfg=${2:-}; shift ;;
            --out) out=${2:-}; shift ;;
            --bundle) bundle=${2:-}; shift ;;
            --grow) grow=${2:-}; shift ;;
            --stage) stage=1 ;;
            --state-partition) state_size=${2:-}; shift ;;
            --host-ca) IMG_HOST_CA=1 ;;
            --force) force=1 ;;
            *) img_fail "unknown option $1 (see deploy/image.sh)" 2 ;;
        esac
        shift
    done
    [ -n "$base" ] && [ -n "$cfg" ] && [ -n "$out" ] \
        || img_fail "usage: ./setup.sh image --base IMAGE.img --config DEVICE.toml --out OUT.img [--bundle FILE] [--grow SIZE] [--state-partition SIZE] [--stage] [--host-ca] [--force]" 2
    if [ -n "$state_size" ]; then
        state_bytes=$(numfmt --from=iec "$state_size" 2>/dev/null) \
            || img_fail "--state-partition $state_size: not a size (e.g. 512M, 1G)" 2
        [ "$state_bytes" -ge $((16 * 1048576)) ] || img_fail "--state-partition: at least 16M" 2
    fi
    [ -f "$base" ] || img_fail "$base: no such image" 2
    [ -f "$cfg" ] || img_fail "$cfg: no such device file" 2
    [ -z "$bundle" ] || [ -f "$bundle" ] || img_fail "$bundle: no such bundle" 2
    [ "$(realpath -m "$base")" != "$(realpath -m "$out")" ] || img_fail "--out must differ from --base" 2
    [ ! -e "$out" ] || [ "$force" = 1 ] || img_fail "$out exists (--force to overwrite)" 2
    [ "$(id -u)" -eq 0 ] || img_fail "run as root (loop devices and mounts): sudo ./setup.sh image ..." 2
    local start=$SECONDS
    apt_install "${IMG_TOOLS[@]}"
    [ -x "$VENV/bin/passgate" ] || python_env "$EXTRAS"  # for `passgate provision --check`
    IMG_PY="$VENV/bin/python"

    # Fail fast: the device file (and bundle) must be valid before any copying.
    local check bname hostname
    bname=$("$IMG_PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get("trust", {}).get("bundle", ""))' "$cfg" 2>/dev/null) || bname=""
    check=$("$VENV/bin/passgate" provision --check --json --device-file "$cfg" ${bundle:+--bundle "$bundle"}) \
        || img_fail "$cfg: refused (see above); no image written" 2
    hostname=$(printf '%s' "$check" | "$IMG_PY" -c 'import json, sys; print(json.load(sys.stdin)["hostname"])')
    if [ -z "$bundle" ]; then
        bundle=$(printf '%s' "$check" | "$IMG_PY" -c 'import json, sys; b = json.load(sys.stdin)["bundle"]; print(b["path"] if b else "")')
    fi

    trap img_cleanup EXIT
    IMG_WORK=$(mktemp -d /tmp/passgate-image.XXXXXX)
    IMG_ROOT=$IMG_WORK/root
    mkdir -p "$IMG_ROOT"
    IMG_FILE="$out.part"
    IMG_PART=$IMG_FILE
    say "image: copying $base (sparse)"
    cp --sparse=always "$base" "$IMG_FILE" || img_fail "cannot copy $base"
    img_partitions "$IMG_FILE"
    if [ -n "$state_bytes" ] && [ "$IMG_ROOT_LAST" != 1 ]; then
        img_fail "--state-partition: the root is not the last partition of $base (a state partition already?)" 2
    fi
    img_attach_root

    local arch host mech
    arch=$(img_arch "$IMG_ROOT")
    host=$(img_host_arch)
    mech=$(img_mechanism)
    say "image: root is ${arch:-unknown} (this machine $host); first-boot mechanism: $mech"

    IMG_QEMU="" IMG_QEMU_USED=""
    local how=stage
    if [ "$stage" = 0 ]; then
        if [ -n "$arch" ] && [ "$arch" = "$host" ]; then how=chroot
        elif [ -n "$arch" ] && img_qemu_ready "$arch"; then how=chroot; IMG_QEMU_USED="qemu-user for $arch"
        else img_note "cannot run $arch binaries here (install qemu-user-static with binfmt support to install now)"
        fi
    fi
    [ -n "$arch" ] || img_fail "cannot tell the image's architecture (no dpkg in its root?)"
    img_build_package "$arch"
    if [ "$how" = chroot ]; then
        local free need
        free=$(img_free_mb)
        need=${grow:+$(numfmt --from=iec "$grow")}
        if [ -n "$need" ]; then img_grow $((need / 1048576))
        elif [ "$free" -lt "$IMG_MIN_FREE_MB" ]; then img_grow $(((IMG_MIN_FREE_MB - free + 255) / 256 * 256))
        fi
        img_install_chroot
    else
        img_install_stage
    fi
    img_hardware
    if [ -n "$state_bytes" ]; then img_state_partition "$state_bytes"; fi
    img_set_hostname "$mech" "$hostname"

    img_fat_put "$cfg" "$IMG_DEVICE_FILE"
    if [ -n "$bundle" ]; then
        img_fat_put "$bundle" "${bname:-passgate-bundle.bin}"
        img_note "bundle copied to the boot partition as ${bname:-passgate-bundle.bin}"
    fi
    img_note "device file copied to the boot partition as $IMG_DEVICE_FILE"

    IMG_PART=""
    img_cleanup
    trap - EXIT
    mv "$IMG_FILE" "$out"
    say "image: wrote $out ($(du -h --apparent-size "$out" | cut -f1), $(du -h "$out" | cut -f1) allocated) for $hostname in $((SECONDS - start)) s"
    say "image: flash it, boot it; the OLED shows the provisioning result (docs/provisioning.md)"
}
