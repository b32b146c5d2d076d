# shellcheck shell=bash
# The disk side of `setup.sh image`: the image file's partition table (read with sfdisk), the
# boot partition through mtools (never mounted), the root partition through a loop device at
# its offset, growing the root, and appending the state partition (--state-partition).
# Sourced by deploy/image.sh, whose globals (IMG_FILE, IMG_ROOT, IMG_LOOP, IMG_STATE_LOOP,
# IMG_MOUNTS) and helpers (img_note, img_fail, img_mount, img_umount) these functions use;
# not run directly.

# Partitions of an image file: sets IMG_SECTOR, IMG_BOOT_OFF, IMG_ROOT_OFF, IMG_ROOT_SIZE
# (bytes) and IMG_ROOT_NUM from `sfdisk -J`. Boot = first FAT/EFI partition, root = first Linux.
img_partitions() {
    local json out
    json=$(sfdisk -J "$1") || img_fail "$1: no partition table (sfdisk -J failed)"
    out=$(printf '%s' "$json" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
sector = t.get("sectorsize", 512)
fat = {"b", "c", "e", "6", "ef", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
       "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"}
linux = {"83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"}
parts = t.get("partitions", [])
boot = next((p for p in parts if p["type"].upper().lstrip("0X") in {f.upper() for f in fat}), None)
root = next((p for p in parts if p["type"].upper() in linux), None)
if boot is None or root is None:
    sys.exit("need a FAT boot partition and a Linux root partition")
num = parts.index(root) + 1
last = root is parts[-1]
print(sector, boot["start"] * sector, root["start"] * sector, root["size"] * sector, num,
      int(last), t["label"])
') || img_fail "$1: $out"
    read -r IMG_SECTOR IMG_BOOT_OFF IMG_ROOT_OFF IMG_ROOT_SIZE IMG_ROOT_NUM IMG_ROOT_LAST \
        IMG_LABEL <<<"$out"
}

# mtools on the boot partition of $IMG_FILE at $IMG_BOOT_OFF.
img_fat() { local cmd=$1; shift; MTOOLS_SKIP_CHECK=1 "$cmd" -i "$IMG_FILE@@$IMG_BOOT_OFF" "$@"; }
img_fat_has() { img_fat mdir -b "::/$1" >/dev/null 2>&1; }
img_fat_get() { img_fat mtype "::/$1"; }
img_fat_put() { img_fat mcopy -o -D o "$1" "::/$2" || img_fail "cannot write $2 to the boot partition"; }

img_attach_root() {
    IMG_LOOP=$(losetup --find --show --offset "$IMG_ROOT_OFF" --sizelimit "$IMG_ROOT_SIZE" \
        "$IMG_FILE") || img_fail "losetup failed (loop devices available? running as root?)"
    img_mount -t ext4 "$IMG_LOOP" "$IMG_ROOT"
}

img_detach_root() {
    img_umount "$IMG_ROOT"
    losetup -d "$IMG_LOOP"
    IMG_LOOP=""
}

img_grow() {  # MiB
    [ "$IMG_ROOT_LAST" = 1 ] || img_fail "the root partition is not the last one: cannot grow it"
    img_note "growing the root partition by $1 MiB"
    img_detach_root
    truncate -s "+$1M" "$IMG_FILE"
    if [ "$IMG_LABEL" = gpt ]; then sfdisk -q --relocate gpt-bak-std "$IMG_FILE"; fi
    echo ", +" | sfdisk -q --no-reread --no-tell-kernel -N "$IMG_ROOT_NUM" "$IMG_FILE" \
        || img_fail "sfdisk could not grow partition $IMG_ROOT_NUM"
    img_partitions "$IMG_FILE"
    IMG_LOOP=$(losetup --find --show --offset "$IMG_ROOT_OFF" --sizelimit "$IMG_ROOT_SIZE" "$IMG_FILE")
    e2fsck -f -p "$IMG_LOOP" >/dev/null || [ $? -le 1 ] || img_fail "e2fsck found errors in the root"
    resize2fs -f "$IMG_LOOP" >/dev/null 2>&1 || img_fail "resize2fs failed"
    losetup -d "$IMG_LOOP" && IMG_LOOP=""
    img_attach_root
}

img_free_mb() { df -Pm "$IMG_ROOT" | awk 'NR == 2 { print $4 }'; }

# A folder of the state partition (mounted at $IMG_ROOT$PG_DATA), owned as in the image's own
# user database (root until the install has made the users: a staged install fixes it at first
# boot through the bind mount). What the root already holds in ROOTDIR moves onto it.
img_state_dir() {  # NAME USER GROUP MODE ROOTDIR
    local d=$IMG_ROOT$PG_DATA/$1 from=$IMG_ROOT$5 uid gid
    uid=$(awk -F: -v n="$2" '$1 == n { print $3; exit }' "$IMG_ROOT/etc/passwd")
    gid=$(awk -F: -v n="$3" '$1 == n { print $3; exit }' "$IMG_ROOT/etc/group")
    mkdir -p "$d"
    chown "+${uid:-0}:+${gid:-0}" "$d"
    chmod "$4" "$d"  # after chown, which may clear the setgid bit
    if [ -d "$from" ] && [ -n "$(ls -A "$from")" ]; then
        rsync -aH --numeric-ids "$from/" "$d/" || img_fail "cannot move $5 onto the state partition"
        find "$from" -mindepth 1 -delete
        img_note "$5: moved onto the state partition"
    fi
    mkdir -p "$from"  # the mount point
}

# The state partition: ext4, label PGSTATE, appended after the root; its two folders made and
# the root's fstab given the lines `install --readonly-root` writes, so the checkpoint keeps its
# state there from the first boot on. The overlay itself is switched on at the device
# (raspi-config cannot run here). Raspberry Pi OS's first boot grows the root only when it
# is the last partition: with this one after it, the root keeps the size it has here.
img_state_partition() {  # BYTES
    local mib=$((($1 + 1048575) / 1048576)) MiB=1048576 out start size uuid end
    img_note "adding the state partition: $mib MiB, ext4, label $PG_STATE_LABEL"
    # Right after the root, on a MiB boundary (sfdisk would otherwise take the first gap,
    # which on a Raspberry Pi OS image is the one before the boot partition).
    start=$(((IMG_ROOT_OFF + IMG_ROOT_SIZE + MiB - 1) / MiB * MiB))
    end=$((start + mib * MiB))
    if [ "$IMG_LABEL" = gpt ]; then end=$((end + MiB)); fi  # room for GPT's backup table
    if [ "$(stat -c %s "$IMG_FILE")" -lt "$end" ]; then truncate -s "$end" "$IMG_FILE"; fi
    if [ "$IMG_LABEL" = gpt ]; then sfdisk -q --relocate gpt-bak-std "$IMG_FILE"; fi
    echo "start=$((start / IMG_SECTOR)), size=$((mib * MiB / IMG_SECTOR)), type=L" \
        | sfdisk -q --append --no-reread --no-tell-kernel "$IMG_FILE" >/dev/null \
        || img_fail "sfdisk could not append the state partition"
    out=$(sfdisk -J "$IMG_FILE" | python3 -c 'import json, sys
t = json.load(sys.stdin)["partitiontable"]
p, s = t["partitions"][-1], t.get("sectorsize", 512)
print(p["start"] * s, p["size"] * s)') || img_fail "cannot read the new partition table"
    read -r start size <<<"$out"
    IMG_STATE_LOOP=$(losetup --find --show --offset "$start" --sizelimit "$size" "$IMG_FILE") \
        || img_fail "losetup failed for the state partition"
    # With the image's own mke2fs defaults where it has them, so its fsck knows every feature;
    # tables initialised now rather than in the background at the device's first mount.
    local mkfs=(mkfs.ext4 -q -F -L "$PG_STATE_LABEL" -E lazy_itable_init=0,lazy_journal_init=0 "$IMG_STATE_LOOP")
    if ! { [ -f "$IMG_ROOT/etc/mke2fs.conf" ] && MKE2FS_CONFIG=$IMG_ROOT/etc/mke2fs.conf "${mkfs[@]}" 2>/dev/null; }; then
        "${mkfs[@]}" || img_fail "mkfs.ext4 failed on the state partition"
    fi
    uuid=$(blkid -p -o value -s UUID "$IMG_STATE_LOOP")
    mkdir -p "$IMG_ROOT$PG_DATA"
    img_mount -t ext4 "$IMG_STATE_LOOP" "$IMG_ROOT$PG_DATA"
    img_state_dir passgate passgate passgate 2770 "$PG_STATE"
    img_state_dir passgate-sync passgate-sync passgate-sync 0700 "$PG_SYNC_STATE"
    img_state_dir passgate-update root root 0755 "$PG_UPDATE_STATE"
    img_umount "$IMG_ROOT$PG_DATA"
    losetup -d "$IMG_STATE_LOOP"
    IMG_STATE_LOOP=""
    fstab_write_block "$IMG_ROOT$PG_FSTAB" "$uuid"
    img_note "state partition UUID $uuid in /etc/fstab: $PG_STATE, $PG_SYNC_STATE and $PG_UPDATE_STATE are bind mounts of its folders"
    local free
    free=$(img_free_mb)
    img_note "the root keeps its size at first boot (the state partition follows it): $free MiB free; --grow SIZE for more"
}
