# shellcheck shell=bash
# What `setup.sh install` takes from apt beside the package: sourced by install.sh.
#
# Rules kept here:
# - The Raspberry Pi packages (PI_APT) come from Raspberry Pi OS's own apt repository
#   (archive.raspberrypi.com). Before apt-get install, each missing one is looked up with
#   apt-cache; if any is not available the install stops with exit 2 (a configuration
#   problem), naming the packages, how to add the repository, and what works without it -
#   never apt's bare "Unable to locate package" and exit 100. --no-pi-camera leaves out the
#   camera packages on purpose (PI_CAMERA_APT), and then only the others are checked; it is
#   offered only when the camera packages are all that is missing.
# - One numpy on the box: apt's picamera2 and simplejpeg are built against the system's
#   python3-numpy (1.24 on Bookworm); the package depends on python3-numpy and its venv
#   (include-system-site-packages) has none of its own (numpy is not in the lock).

# From Raspberry Pi OS only. picamera2 must come from apt; the package's venv sees it through
# include-system-site-packages. lgpio is gpiozero's pin factory on a Pi 5 (and works on older Pis).
PI_CAMERA_APT=(python3-picamera2 python3-libcamera)
PI_APT=("${PI_CAMERA_APT[@]}" python3-lgpio python3-rpi-lgpio)
NO_PI_CAMERA=0

# The Pi packages this install wants: all of PI_APT, or without the camera's (--no-pi-camera).
pi_apt_wanted() {
    local p c
    for p in "${PI_APT[@]}"; do
        if [ "$NO_PI_CAMERA" = 1 ]; then
            for c in "${PI_CAMERA_APT[@]}"; do [ "$p" = "$c" ] && continue 2; done
        fi
        printf '%s\n' "$p"
    done
}

# Exit 2 with the whole story if apt has no candidate for one of the given packages.
check_pi_packages() {
    local p unavailable=()
    for p in "$@"; do
        # `apt-cache policy` prints nothing for a name apt has never heard of, and
        # "Candidate: (none)" for one it knows but cannot install.
        apt-cache policy "$p" 2>/dev/null | grep -Eq '^ *Candidate: [^(]' || unavailable+=("$p")
    done
    [ ${#unavailable[@]} -eq 0 ] && return 0
    local lists="apt's package lists" c others=() camera_only=""
    [ "$DRY_RUN" = 1 ] && lists="apt's package lists as they are (a dry run does not update them)"
    for p in "${unavailable[@]}"; do
        for c in "${PI_CAMERA_APT[@]}"; do [ "$p" = "$c" ] && continue 2; done
        others+=("$p")
    done
    # Offered only when it would get through: GPIO's lgpio packages are needed either way.
    [ ${#others[@]} -eq 0 ] && camera_only="
  - install without the Pi camera: sudo ./setup.sh install --no-pi-camera"
    cat >&2 <<EOF
install: ${unavailable[*]}: not available from apt (looked up in $lists).
  These come from the Raspberry Pi OS repository (archive.raspberrypi.com), which this
  system does not use. Either:
  - use a Raspberry Pi OS image (Lite, 64-bit, Bookworm or Trixie): it has the repository; or
  - add it: the keyring package raspberrypi-archive-keyring (its .deb is under
    http://archive.raspberrypi.com/debian/pool/main/r/raspberrypi-archive-keyring/:
    sudo apt-get install ./raspberrypi-archive-keyring_*.deb), and a file
    /etc/apt/sources.list.d/raspi.list with the line
        deb [signed-by=/usr/share/keyrings/raspberrypi-archive-keyring.gpg] http://archive.raspberrypi.com/debian/ $(suite) main
    then sudo apt-get update and run this again${camera_only:+; or}$camera_only
  Everything but the Pi camera works without the camera packages: camera.source = "files"
  or "webcam" in /etc/passgate/passgate.d/20-site.toml, or passgate run --simulate.
EOF
    exit 2
}

# The Debian release's code name (bookworm, trixie), for the sources line.
suite() {
    local codename=""
    # shellcheck disable=SC1091
    [ -r /etc/os-release ] && codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    echo "${codename:-bookworm}"
}
