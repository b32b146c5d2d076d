# shellcheck shell=bash
# The state partition and the read-only root: `setup.sh install --readonly-root`,
# `--writable-root`, `--state-device DEV`, and the fstab lines `setup.sh image --state-partition`
# writes. Sourced by deploy/install.sh; not run directly. docs/technician.md, "Read-only root".
#
# With Raspberry Pi OS's overlay on, every write to the root lands in RAM and is gone at the
# next boot. The checkpoint's state (journal, trust data, clock floor in /var/lib/passgate; the
# device key in /var/lib/passgate-sync; the updater's step and its cached packages in
# /var/lib/passgate-update, which must survive the reboot out of the overlay that an update
# takes) therefore lives on its own ext4 partition, labelled PGSTATE and mounted at
# /var/lib/passgate-data, and the three folders are bind mounts of folders on it: every path
# the services, the units and the docs use stays what it was.

PG_DATA=/var/lib/passgate-data
PG_STATE_LABEL=PGSTATE
PG_UPDATE_STATE=/var/lib/passgate-update  # the updater unit's StateDirectory
PG_FSTAB=/etc/fstab
PG_PROC_CMDLINE=/proc/cmdline
PG_BOOT_DIRS=(/boot/firmware /boot)
PG_SERVICES=(passgate-scanner.service passgate-sync.service)
FSTAB_BEGIN="# >>> passgate state partition: written by setup.sh, rewritten by it; do not edit"
FSTAB_END="# <<< passgate state partition"
STATE_DEV=""
STATE_UUID=""
STOPPED=()
STOP_DONE=0

state_fail() { echo "install: $1" >&2; exit "${2:-1}"; }

# The fstab lines for the state partition whose file system UUID is $1.
state_fstab_block() {
    local bind="bind,nofail,x-systemd.requires-mounts-for=$PG_DATA"
    printf '%s\n' "$FSTAB_BEGIN" \
        "# The checkpoint's state lives on this partition so that it survives a read-only root" \
        "# (docs/technician.md). nofail: a missing partition does not stop the boot; the passgate" \
        "# units need these mounts (RequiresMountsFor=) and then fail rather than write to the root." \
        "# commit=5: ext4 writes its metadata every 5 s at most (the journal fsyncs every scan)."
    printf 'UUID=%s %s ext4 defaults,noatime,commit=5,errors=remount-ro,nofail,x-systemd.device-timeout=30s 0 2\n' \
        "$1" "$PG_DATA"
    printf '%s %s none %s 0 0\n' "$PG_DATA/passgate" "$PG_STATE" "$bind" \
        "$PG_DATA/passgate-sync" "$PG_SYNC_STATE" "$bind" \
        "$PG_DATA/passgate-update" "$PG_UPDATE_STATE" "$bind"
    printf '%s\n' "$FSTAB_END"
}

# The passgate block of an fstab file as it is (empty if it has none).
fstab_block() {
    [ -f "$1" ] || return 0
    awk -v begin="$FSTAB_BEGIN" -v end="$FSTAB_END" '
        $0 == begin { on = 1 } on { print } on && $0 == end { exit }' "$1"
}

# The file system UUID the passgate block of an fstab file mounts (empty if none).
fstab_state_uuid() {
    fstab_block "$1" | awk -v data="$PG_DATA" '$2 == data && $1 ~ /^UUID=/ { print substr($1, 6); exit }'
}

# Rewrite fstab FILE with the block for UUID in place of the old one (appended if none);
# everything else is kept as it is. Atomic: written beside it, then renamed.
fstab_write_block() {  # FILE UUID
    local file=$1 tmp
    tmp=$(mktemp "$file.passgate.XXXXXX")
    state_fstab_block "$2" >"$tmp.block"
    { [ -f "$file" ] && cat "$file"; true; } | awk -v begin="$FSTAB_BEGIN" -v end="$FSTAB_END" \
        -v blockfile="$tmp.block" '
        function block(  l) { while ((getline l < blockfile) > 0) print l; close(blockfile); done = 1 }
        $0 == begin { skip = 1; block(); next }
        skip { if ($0 == end) skip = 0; next }
        { print }
        END { if (!done) block() }' >"$tmp"
    rm -f "$tmp.block"
    chmod 0644 "$tmp"
    mv "$tmp" "$file"
}

# The state partition: --state-device DEV, else the one the fstab block names, else the file
# system labelled PGSTATE. Sets STATE_DEV and STATE_UUID, or refuses with one line (exit 2):
# nothing has been changed at that point.
resolve_state_device() {  # DEV (may be empty)
    local dev=$1 uuid type target current
    if [ -z "$dev" ]; then
        uuid=$(fstab_state_uuid "$PG_FSTAB")
        if [ -n "$uuid" ]; then dev=$(blkid -U "$uuid" 2>/dev/null || true); fi
        [ -n "$dev" ] || dev=$(blkid -L "$PG_STATE_LABEL" 2>/dev/null || true)
        [ -n "$dev" ] || state_fail "--readonly-root needs a partition labelled $PG_STATE_LABEL for the state, and there is none: build the card with './setup.sh image ... --state-partition 1G', or make one on a spare partition ('sudo mkfs.ext4 -L $PG_STATE_LABEL /dev/PARTITION', which erases it), or name one with --state-device DEV" 2
    fi
    [ -b "$dev" ] || state_fail "--state-device $dev: not a block device" 2
    type=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null || true)
    [ "$type" = ext4 ] || state_fail "$dev holds ${type:-no} file system, not ext4: make one with 'sudo mkfs.ext4 -L $PG_STATE_LABEL $dev' (this erases it)" 2
    # Never the root, the boot partition or anything else in use: only our own mounts.
    while read -r target; do
        case "$target" in
            "$PG_DATA" | "$PG_STATE" | "$PG_SYNC_STATE" | "$PG_UPDATE_STATE" | "") ;;
            *) state_fail "$dev is mounted at $target: the state needs a partition of its own" 2 ;;
        esac
    done < <(findmnt -rn -o TARGET -S "$dev" 2>/dev/null || true)
    # A state partition already in use stays in use: fstab pointed at another, empty one would
    # leave the journal and the device key behind on the old one (the bind mounts are there,
    # so nothing would be moved). Moving it is a deliberate act, done by hand.
    current=$(findmnt -n -o SOURCE --mountpoint "$PG_DATA" 2>/dev/null || true)
    if [ -n "$current" ] && [ "$(readlink -f "$current")" != "$(readlink -f "$dev")" ]; then
        state_fail "the state lives on $current (mounted at $PG_DATA), not $dev: to keep it, run this without --state-device; to move it, stop ${PG_SERVICES[*]}, copy it with 'rsync -aH --numeric-ids $PG_DATA/ MOUNTPOINT/' onto $dev mounted elsewhere, unmount $PG_STATE, $PG_SYNC_STATE, $PG_UPDATE_STATE and $PG_DATA, then run this again" 2
    fi
    STATE_DEV=$dev
    STATE_UUID=$(blkid -p -o value -s UUID "$dev")
}

is_live() { [ -d /run/systemd/system ]; }  # a running systemd (not a chroot or an image)

# Stop the services once, before their state moves; state_units_start starts them again.
state_units_stop() {
    local u
    [ "$STOP_DONE" = 0 ] && is_live || return 0
    STOP_DONE=1
    for u in "${PG_SERVICES[@]}"; do
        if systemctl is-active --quiet "$u"; then
            act systemctl stop "$u"
            STOPPED+=("$u")
        fi
    done
}

state_units_start() {
    local u
    for u in "${STOPPED[@]}"; do act systemctl start "$u"; done
    STOPPED=()
}

# Move what a folder on the root holds onto the partition: copied, compared, then deleted from
# the root (a second copy of the device key or the journal must not linger under the mount).
state_move() {  # FROM TO
    local from=$1 to=$2 diff
    mountpoint -q "$from" && return 0  # already the partition's folder
    [ -d "$from" ] && [ -n "$(ls -A "$from")" ] || return 0
    if [ -n "$(ls -A "$to" 2>/dev/null)" ]; then
        diff=$(rsync -aHc --numeric-ids --dry-run --itemize-changes "$from/" "$to/")
        [ -z "$diff" ] || state_fail "both $from (on the root) and $to (on the state partition) hold state, and they differ: move one of them away by hand, then run this again"
    fi
    state_units_stop
    act rsync -aH --numeric-ids "$from/" "$to/"
    if [ "$DRY_RUN" = 0 ]; then
        diff=$(rsync -aHc --numeric-ids --dry-run --itemize-changes "$from/" "$to/")
        [ -z "$diff" ] || state_fail "copying $from to $to left differences (nothing deleted): $diff"
    fi
    act find "$from" -mindepth 1 -delete
    changed "state moved from $from (root) to $to (state partition)"
}

# Mount a path by its fstab line, as the next boot will. With nofail, mount says nothing and
# exits 0 when it cannot find the device, so the result is checked: a line that does not
# mount now would not mount at boot either.
state_mount() {  # PATH
    act mount "$1" || state_fail "cannot mount $1 from its $PG_FSTAB line (see above)"
    [ "$DRY_RUN" = 1 ] || mountpoint -q "$1" \
        || state_fail "mount $1 did nothing: its $PG_FSTAB line does not find $STATE_DEV (UUID $STATE_UUID; is /dev/disk/by-uuid there?)"
}

# The state partition in fstab, mounted, its folders made, state on the root moved onto it,
# and the two bind mounts in place. Runs for --readonly-root and --state-device only.
step_state() {
    [ -n "$STATE_DEV" ] || return 0
    if [ "$(fstab_block "$PG_FSTAB")" != "$(state_fstab_block "$STATE_UUID")" ]; then
        if [ "$DRY_RUN" = 1 ]; then
            printf 'would write to %s:\n' "$PG_FSTAB"
            state_fstab_block "$STATE_UUID" | sed 's/^/    /'
        else
            fstab_write_block "$PG_FSTAB" "$STATE_UUID"
            # systemd makes mount units from fstab: let it see the new lines now.
            if is_live; then systemctl daemon-reload; fi
        fi
        changed "fstab: state partition $STATE_DEV (UUID $STATE_UUID) at $PG_DATA, bind mounts $PG_STATE, $PG_SYNC_STATE and $PG_UPDATE_STATE"
    fi
    ensure_dir "$PG_DATA" root root 0755
    if ! mountpoint -q "$PG_DATA"; then
        state_mount "$PG_DATA"
        changed "state partition mounted at $PG_DATA"
    fi
    ensure_dir "$PG_DATA/passgate" passgate passgate 2770
    ensure_dir "$PG_DATA/passgate-sync" passgate-sync passgate-sync 0700
    # The updater's folder (root, 0755 as the unit's StateDirectory makes it): its step and
    # packages survive the reboots of an update through the overlay. No service to stop for
    # it: the updater's lock is taken per run, and a run in progress here is unlikely.
    ensure_dir "$PG_DATA/passgate-update" root root 0755
    ensure_dir "$PG_UPDATE_STATE" root root 0755
    state_move "$PG_STATE" "$PG_DATA/passgate"
    state_move "$PG_SYNC_STATE" "$PG_DATA/passgate-sync"
    state_move "$PG_UPDATE_STATE" "$PG_DATA/passgate-update"
    local m
    for m in "$PG_STATE" "$PG_SYNC_STATE" "$PG_UPDATE_STATE"; do
        if ! mountpoint -q "$m"; then
            state_units_stop
            state_mount "$m"
            changed "$m is now the state partition's folder (bind mount)"
        fi
    done
    state_units_start
}

# ---- the overlay (Raspberry Pi OS's read-only root) ------------------------------------------

cmdline_txt() {
    local d
    for d in "${PG_BOOT_DIRS[@]}"; do [ -f "$d/cmdline.txt" ] && { echo "$d/cmdline.txt"; return 0; }; done
    return 1
}

# Does a kernel command line (cmdline.txt: the next boot; /proc/cmdline: this one) turn the
# overlay on? Bookworm's raspi-config writes boot=overlay, later ones overlayroot=tmpfs.
overlay_in() {
    [ -f "$1" ] && tr -s ' \t' '\n\n' <"$1" | awk '
        $0 == "boot=overlay" || ($0 ~ /^overlayroot=./ && $0 != "overlayroot=disabled") { found = 1 }
        END { exit !found }'
}

overlay_now() { overlay_in "$PG_PROC_CMDLINE"; }

# overlayroot overlays every other fstab mount too unless told recurse=0: the state partition
# would then be a RAM overlay itself, and lost at reboot. MODE add: recurse=0 into every
# overlayroot=tmpfs token; MODE strip: back to what raspi-config wrote (it only removes its own
# spelling when switching off); MODE drop: remove overlayroot tokens. Prints the new line.
cmdline_edit() {  # MODE FILE
    awk -v mode="$1" '{
        out = ""
        for (i = 1; i <= NF; i++) {
            t = $i
            if (t ~ /^overlayroot=/ && mode == "drop") continue
            if (t ~ /^overlayroot=tmpfs(:|$)/ && mode != "drop") {
                rest = substr(t, 18); sub(/^:/, "", rest)
                n = split(rest, o, ","); opts = ""
                for (j = 1; j <= n; j++) if (o[j] != "" && o[j] !~ /^recurse=/) opts = opts "," o[j]
                if (mode == "add") opts = opts ",recurse=0"
                t = "overlayroot=tmpfs" (opts == "" ? "" : ":" substr(opts, 2))
            }
            out = out (out == "" ? "" : " ") t
        }
        print out
    }' "$2"
}

# Rewrite cmdline.txt (one line) with cmdline_edit MODE, remounting its partition writable
# for the moment if it is mounted read-only.
cmdline_rewrite() {  # MODE FILE
    local file=$2 dir new ro=0
    dir=$(dirname "$file")
    new=$(cmdline_edit "$1" "$file")
    [ "$new" = "$(cat "$file")" ] && return 0
    if findmnt -rn -o OPTIONS --mountpoint "$dir" 2>/dev/null | tr ',' '\n' | grep -qx ro; then
        mount -o remount,rw "$dir" && ro=1
    fi
    printf '%s\n' "$new" >"$file.passgate" && mv "$file.passgate" "$file"
    sync
    if [ "$ro" = 1 ]; then mount -o remount,ro "$dir" || true; fi
}

# Is the boot partition mounted read-only from the next boot on (raspi-config's enable_bootro)?
boot_ro_configured() {
    awk '$1 !~ /^#/ && ($2 == "/boot" || $2 == "/boot/firmware") && ("," $4 ",") ~ /,ro,/ { f = 1 }
         END { exit !f }' "$PG_FSTAB" 2>/dev/null
}

step_overlay() {
    local cmd
    [ "$READONLY_ROOT" = 1 ] || [ "$WRITABLE_ROOT" = 1 ] || return 0
    if ! is_pi; then
        if [ "$READONLY_ROOT" = 1 ]; then
            skipped "read-only root (overlay) on: raspi-config nonint do_overlayfs 0, overlayroot recurse=0"
        else
            skipped "read-only root (overlay) off: raspi-config nonint do_overlayfs 1"
        fi
        return 0
    fi
    cmd=$(cmdline_txt) || state_fail "no cmdline.txt in ${PG_BOOT_DIRS[*]}: cannot switch the overlay"
    if [ "$READONLY_ROOT" = 1 ]; then
        if ! overlay_in "$cmd"; then
            act raspi-config nonint do_overlayfs 0
            [ "$DRY_RUN" = 1 ] || overlay_in "$cmd" || state_fail "raspi-config did not switch the overlay on ($cmd unchanged)"
            changed "read-only root (overlay) on; takes effect after reboot"
        fi
        if [ "$DRY_RUN" = 1 ] && ! overlay_in "$cmd"; then
            echo "would run: cmdline_rewrite add $cmd (overlayroot=tmpfs:recurse=0, if raspi-config writes overlayroot)"
        elif [ "$(cmdline_edit add "$cmd")" != "$(cat "$cmd")" ]; then
            act cmdline_rewrite add "$cmd"
            changed "overlay limited to the root (overlayroot recurse=0): the state partition stays on disk"
        fi
        return 0
    fi
    if overlay_in "$cmd"; then
        act cmdline_rewrite strip "$cmd"
        act raspi-config nonint do_overlayfs 1
        if [ "$DRY_RUN" = 0 ] && overlay_in "$cmd"; then cmdline_rewrite drop "$cmd"; fi
        [ "$DRY_RUN" = 1 ] || ! overlay_in "$cmd" || state_fail "the overlay is still on in $cmd"
        changed "read-only root (overlay) off; takes effect after reboot (the state partition stays)"
    fi
    if boot_ro_configured; then
        if overlay_now; then
            say "the boot partition stays read-only: run this again after the reboot to make it writable"
        else
            act raspi-config nonint disable_bootro
            changed "boot partition writable from the next boot on"
        fi
    fi
}
