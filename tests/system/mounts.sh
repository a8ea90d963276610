# Sourced by build_image.sh and test_trixie.sh: removing a chroot safely.
# rm -rf of a chroot must never descend into a still-mounted /proc, /sys or /dev.

# Lazily unmount everything mounted below directory $1, deepest first.
unmount_under() {
    awk -v d="$1" 'index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m"
    done
}

# rm -rf each directory given, after unmounting what is below it; refuse if a mount stays.
safe_rm() {
    for d; do
        [ -e "$d" ] || continue
        unmount_under "$d"
        if awk -v d="$d" 'index($2, d "/") == 1 {f=1} END {exit !f}' /proc/mounts; then
            echo "refusing to remove $d: something is still mounted under it" >&2; exit 1
        fi
        rm -rf "$d"
    done
}
