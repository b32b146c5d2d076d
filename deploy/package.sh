# shellcheck shell=bash
# `./setup.sh package [--arch amd64|arm64] [--out DIR]`: the Debian package, the one install
# and update path. Sourced by setup.sh; not run directly. Writes DIR/passgate_<version>_<arch>.deb.
#
# Rules kept here:
# - Locked: the Python dependencies are exactly requirements/device-<arch>.lock (versions and
#   sha256 hashes; `./setup.sh lock` remakes it with uv). Wheels for the target are fetched
#   here (pip download --only-binary=:all: --platform ... --require-hashes), so the device
#   never talks to PyPI.
# - One code path for both architectures: the venv is assembled here, not made by `python3
#   -m venv` on the target: pyvenv.cfg and the python symlinks (arch-free), the wheels
#   installed with `pip install --target --platform` (no target code runs), the entry points
#   written as two-line scripts, bytecode compiled with the build host's python of the same
#   minor version (PG_PY). So the amd64 package the tests install is built exactly as the
#   arm64 one. The device builds nothing at install time: installing is unpacking, which is
#   what makes an update atomic enough for dpkg and possible offline.
# - The venv sees the system's site packages: picamera2, libcamera and lgpio come from
#   Raspberry Pi OS's apt, numpy from Debian's python3-numpy (the version apt's camera
#   packages are built against), so numpy is not in the lock.
# - The target's python is pinned to PG_PY's minor version (python3 (>= 3.11),
#   python3 (<< 3.12)): the site-packages folder and the C extensions are per version.
# - Reproducible: SOURCE_DATE_EPOCH (the last commit's time, else pyproject.toml's mtime)
#   for every mtime, the man pages' date and dpkg-deb; owners root:root (--root-owner-group,
#   users and modes are postinst's); hash-based bytecode; no build path in any file.
# - Plain dpkg-deb, not dh-virtualenv: dh-virtualenv needs a debian/ source tree, debhelper
#   and a build on the target architecture (or a qemu chroot for arm64); here the venv is
#   files put in place, and an arm64 package builds on an amd64 laptop in seconds.
# - Nothing secret: only the files listed below go in (never the checkout's keys/); the
#   test of the package lists it and fails on any key file.

PG_PY=3.11
PKG_UNITS=(passgate-scanner.service passgate-sync.service passgate-firstboot.service
    passgate-update.service passgate-update.timer passgate-update-resume.service)

pkg_version() {
    python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])'
}

pkg_epoch() {
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then echo "$SOURCE_DATE_EPOCH"; return; fi
    git -C "$HERE" log -1 --format=%ct 2>/dev/null || stat -c %Y "$HERE/pyproject.toml"
}

# The wheels for the target: hashes checked against the lock, cached between builds.
pkg_wheels() {  # arch dest
    local arch=$1 dest=$2 machine
    case "$arch" in amd64) machine=x86_64 ;; arm64) machine=aarch64 ;; esac
    local py=${PG_PY/./}
    python3 -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
        --only-binary=:all: --implementation cp --python-version "$PG_PY" --abi "cp$py" \
        --abi abi3 --abi none --platform "manylinux2014_$machine" \
        --platform "manylinux_2_28_$machine" --platform any \
        -r "$HERE/requirements/device-$arch.lock" -d "$dest"
    # passgate itself, from this tree (build isolation: setuptools from the index).
    python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$dest" "$HERE" >/dev/null
}

pkg_venv() {  # arch root wheels
    local arch=$1 root=$2 wheels=$3 machine venv=$2/opt/passgate/venv
    case "$arch" in amd64) machine=x86_64 ;; arm64) machine=aarch64 ;; esac
    local sp="$venv/lib/python$PG_PY/site-packages"
    mkdir -p "$venv/bin" "$sp"
    printf 'home = /usr/bin\ninclude-system-site-packages = true\nversion = %s\n' "$PG_PY" \
        >"$venv/pyvenv.cfg"
    ln -s "/usr/bin/python$PG_PY" "$venv/bin/python3"
    ln -s python3 "$venv/bin/python"
    python3 -m pip install -q --disable-pip-version-check --no-deps --no-index --no-compile \
        --find-links "$wheels" --only-binary=:all: --implementation cp \
        --python-version "$PG_PY" --platform "manylinux2014_$machine" \
        --platform "manylinux_2_28_$machine" --target "$sp" "$wheels"/*.whl
    # The entry points run the package modules with the venv's python (plain sh scripts: the
    # interpreter path is /bin/sh, as Debian wants, and the venv is chosen explicitly).
    # pip's own leftovers that name the build host or duplicate the entry points below.
    rm -rf "$sp/bin" "$sp"/*.dist-info/direct_url.json "$sp"/*.dist-info/REQUESTED
    sed -i '/\/direct_url\.json,/d; /\/REQUESTED,/d' "$sp"/*.dist-info/RECORD
    local cmd module
    for cmd in passgate passgate-collector; do
        module=passgate.cli
        [ "$cmd" = passgate-collector ] && module=passgate_collector.cli
        printf '#!/bin/sh\nexec /opt/passgate/venv/bin/python3 -c '"'"'import sys; from %s import main; sys.exit(main())'"'"' "$@"\n' \
            "$module" >"$venv/bin/$cmd"
        chmod 0755 "$venv/bin/$cmd"
    done
    # Bytecode with hashes, not mtimes, and the installed path, not the build folder.
    # One process, files in order: parallel workers intern differently and vary the bytes.
    python3 -m compileall -q -f --invalidation-mode unchecked-hash -s "$root" -p / "$sp" >/dev/null
}

pkg_files() {  # root epoch arch
    local root=$1 epoch=$2 arch=$3 u doc=$1/usr/share/doc/passgate man=$1/usr/share/man/man1
    install -D -m 0644 "$HERE/firmware/passgate/data/passgate.example.toml" \
        "$root/etc/passgate/passgate.toml"
    for u in "${PKG_UNITS[@]}"; do install -D -m 0644 "$HERE/systemd/$u" "$root/lib/systemd/system/$u"; done
    # The hardware watchdog (RuntimeWatchdogSec): vendor configuration, not a conffile.
    install -D -m 0644 "$HERE/systemd/passgate-watchdog.conf" \
        "$root/lib/systemd/system.conf.d/passgate-watchdog.conf"
    mkdir -p "$root/usr/bin" "$man" "$doc" "$root/usr/share/bash-completion/completions"
    ln -s /opt/passgate/venv/bin/passgate "$root/usr/bin/passgate"
    ln -s /opt/passgate/venv/bin/passgate-collector "$root/usr/bin/passgate-collector"
    # The parsers import the dependencies: the package's own when they run here (a native
    # build, on the Pi too), else the development venv's (./setup.sh dev; an arm64 cross build).
    local py=(env PYTHONPATH="$HERE/firmware:$HERE/collector:$root/opt/passgate/venv/lib/python$PG_PY/site-packages" python3)
    [ "$arch" = "$(dpkg --print-architecture)" ] || py=(env PYTHONPATH="$HERE/firmware:$HERE/collector" "$VENV/bin/python")
    for u in passgate passgate-collector; do
        SOURCE_DATE_EPOCH=$epoch PYTHONDONTWRITEBYTECODE=1 "${py[@]}" "$HERE/deploy/manpage.py" "$u" \
            | gzip -9n >"$man/$u.1.gz"
        [ "${PIPESTATUS[0]}" = 0 ] || { echo "package: man page of $u failed" >&2; exit 1; }
    done
    # argcomplete's completion script; passgate answers it (passgate.cli.complete).
    register-python-argcomplete passgate >"$root/usr/share/bash-completion/completions/passgate"
    install -m 0644 "$HERE/deploy/debian/copyright" "$doc/copyright"
    printf 'passgate (%s) stable; urgency=medium\n\n  * Release %s (pyproject.toml).\n\n -- passgate maintainers <passgate@example.org>  %s\n' \
        "$(pkg_version)" "$(pkg_version)" "$(date -u -R -d "@$epoch")" | gzip -9n >"$doc/changelog.gz"
    install -D -m 0644 "$HERE/deploy/debian/lintian-overrides" "$root/usr/share/lintian/overrides/passgate"
}

pkg_control() {  # root arch version
    local root=$1 arch=$2 version=$3 size s
    mkdir -p "$root/DEBIAN"
    for s in postinst prerm postrm; do install -m 0755 "$HERE/deploy/debian/$s" "$root/DEBIAN/$s"; done
    echo /etc/passgate/passgate.toml >"$root/DEBIAN/conffiles"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
        | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    local pi=""
    # Raspberry Pi OS's camera and GPIO packages: Recommends, because an arm64 Debian is the
    # same architecture without them (the camera falls back to files/webcam, GPIO to a mock).
    [ "$arch" = arm64 ] && pi="python3-picamera2, python3-libcamera, python3-lgpio, python3-rpi-lgpio, "
    cat >"$root/DEBIAN/control" <<CONTROL
Package: passgate
Version: $version
Architecture: $arch
Maintainer: passgate maintainers <passgate@example.org>
Installed-Size: $size
Depends: python3 (>= $PG_PY), python3 (<< 3.$(( ${PG_PY#3.} + 1 ))), python3-numpy, libzbar0, libc6 (>= 2.28), init-system-helpers (>= 1.54), systemd
Recommends: ${pi}python3-argcomplete, i2c-tools, sqlite3, ca-certificates
Section: misc
Priority: optional
Homepage: https://github.com/passgate/passgate
Description: offline QR-pass checkpoint for the Raspberry Pi
 passgate verifies signed QR passes offline at unattended checkpoints (camera,
 OLED, buzzer, LEDs, door relay), keeps a signed SQLite journal and syncs it to
 a fleet collector. This package holds the application with its locked Python
 dependencies in /opt/passgate/venv, the systemd units and the default
 configuration.
CONTROL
}

package_main() {
    local arch out=dist
    arch=$(dpkg --print-architecture)
    while [ $# -gt 0 ]; do
        case "$1" in
            --arch) arch=${2:-}; shift ;;
            --out) out=${2:-}; shift ;;
            *) echo "package: unknown option $1" >&2; exit 2 ;;
        esac
        shift
    done
    case "$arch" in amd64|arm64) ;; *) echo "package: --arch amd64 or arm64, not '$arch'" >&2; exit 2 ;; esac
    local version epoch work
    version=$(pkg_version)
    epoch=$(pkg_epoch)
    work=$(mktemp -d /tmp/passgate-package.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/wheels" "$work/root" "$out"
    say "package: fetching the locked wheels for $arch"
    pkg_wheels "$arch" "$work/wheels"
    pkg_venv "$arch" "$work/root" "$work/wheels"
    pkg_files "$work/root" "$epoch" "$arch"
    pkg_control "$work/root" "$arch" "$version"
    find "$work/root" -exec touch -h -d "@$epoch" {} +
    chmod -R u+rwX,go+rX,go-w "$work/root"
    # Wheels install their bundled shared libraries executable; Debian wants them 0644.
    find "$work/root" -type f -name '*.so*' -exec chmod 0644 {} +
    local deb="$out/passgate_${version}_${arch}.deb"
    # Built beside its final name and renamed when whole: an interrupted build (power, Ctrl-C,
    # a full disk) never leaves a truncated .deb where the repository step would publish it.
    SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$work/root" "$deb.part" \
        >/dev/null
    mv -f "$deb.part" "$deb"
    say "package: $deb ($(du -h "$deb" | cut -f1))"
    echo "$deb"
}
