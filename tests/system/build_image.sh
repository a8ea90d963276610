#!/bin/bash
# Build the boot artefacts for the end-to-end test on a real kernel camera:
# Debian's own kernel (with the vivid driver), a busybox-static initramfs and an
# ext4 Debian 12 root filesystem with systemd, udev, ffmpeg and the freshly
# built camsvc .deb installed by dpkg, started by its own systemd unit.
#
#   tests/system/build_image.sh DEB [GUEST_CONFIG]
#
# Everything is cached under tests/system/cache/ (gitignored), keyed by its
# inputs, so a second run with an unchanged .deb only prints paths:
#   kernel-<pkg>_<version>/       unpacked linux-image .deb, depmod'ed
#   initrd-<kver>-<hash>.cpio.gz  busybox + virtio/ext4 modules
#   rootfs-<hash>/                debootstrap minbase + camsvc's dependencies
#   image-<hash>.ext4             rootfs + camsvc .deb + test config (last 2 kept)
#   image-<hash>.ext4.token       the admin JWT minted in that image for the test
# The last line of output is a shell fragment (KERNEL=... INITRD=... IMAGE=...)
# which run_vm.sh and the pytest fixture read from cache/current.env.
#
# Needs root (debootstrap, chroot, dpkg): started by another user it runs itself
# again through sudo (tools/as-root) and hands the boot artefacts, the token and
# current.env to that user.  Installs its host tools with apt.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CACHE=${CAMSVC_SYSTEM_CACHE:-$HERE/cache}
SUITE=bookworm
# Bump to invalidate cached rootfs/initrd/images when the recipe below changes.
RECIPE=5

DEB=${1:?usage: build_image.sh path/to/camsvc_VERSION_all.deb [guest-config.yaml]}
DEB=$(readlink -f "$DEB")
GUEST_CONFIG=${2:-$HERE/guest/camsvc.yaml}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

log() { printf '[build_image %(%T)T] %s\n' -1 "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }

if [ "$(id -u)" != 0 ]; then
    CAMSVC_SYSTEM_CACHE=$CACHE exec "$TOP/tools/as-root" env CAMSVC_OWNER="$(id -u):$(id -g)" \
        bash "$HERE/build_image.sh" "$DEB" "$GUEST_CONFIG"
fi
mkdir -p "$CACHE"

# --- host tools -------------------------------------------------------------
need=()
for t in qemu-system-x86_64:qemu-system-x86 debootstrap:debootstrap depmod:kmod \
         mke2fs:e2fsprogs cpio:cpio busybox:busybox-static; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
# busybox (not busybox-static) would be dynamically linked: useless in an initramfs.
file -L "$(command -v busybox || echo /nonexistent)" 2>/dev/null | grep -q 'statically linked' \
    || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    log "installing host tools: ${need[*]}"
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
command -v file >/dev/null || apt-get install -y -q --no-install-recommends file >/dev/null

# Debian mirror apt already uses (deb822 sources first, then one-line sources).
MIRROR=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $3=="'$SUITE'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian

# --- kernel -----------------------------------------------------------------
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/ {print $2; exit}')
[ -n "$KPKG" ] || { apt-get update -q >/dev/null; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/ {print $2; exit}'); }
KVERSION=$(apt-cache policy "$KPKG" | awk '/Candidate:/ {print $2}')
KDIR=$CACHE/kernel-${KPKG}_$KVERSION
if [ ! -e "$KDIR/.done" ]; then
    log "fetching $KPKG $KVERSION"
    rm -rf "$KDIR"; mkdir -p "$KDIR/root"
    (cd "$KDIR" && apt-get download -q "$KPKG=$KVERSION" 2>/dev/null >/dev/null)
    dpkg-deb -x "$KDIR"/*.deb "$KDIR/root"
    rm -f "$KDIR"/*.deb
    kver=$(ls "$KDIR/root/lib/modules")
    depmod -b "$KDIR/root" "$kver"
    touch "$KDIR/.done"
fi
KVER=$(ls "$KDIR/root/lib/modules")
KERNEL=$KDIR/root/boot/vmlinuz-$KVER
KMOD=$KDIR/root/lib/modules/$KVER

# Module closure, in load order, as paths relative to the modules dir.
# (modprobe takes one module per call: further arguments are module options.)
mod_closure() {
    for m; do
        modprobe -d "$KDIR/root" -S "$KVER" --show-depends "$m"
    done | awk '$1=="insmod" && !seen[$2]++ {print $2}' \
         | sed "s|^$KDIR/root/lib/modules/$KVER/||; s|^/lib/modules/$KVER/||"
}

# --- initramfs --------------------------------------------------------------
# busybox modprobe skips soft dependencies: crc32c_generic is loaded explicitly.
INITRD_MODS="crc32c_generic virtio_pci virtio_blk ext4"
INIT_SCRIPT='#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /lib/modules/$m 2>/dev/null; done
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.05; done
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; exec sh; }
umount /proc /sys; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
'
ikey=$( (echo "$RECIPE $KVER $INITRD_MODS"; echo "$INIT_SCRIPT"; sha256sum "$(command -v busybox)") | hash_of)
INITRD=$CACHE/initrd-$KVER-$ikey.cpio.gz
if [ ! -e "$INITRD" ]; then
    log "building initramfs"
    w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
    mkdir -p "$w"/{bin,proc,sys,dev,newroot,lib/modules}
    cp "$(command -v busybox)" "$w/bin/busybox"
    printf '%s' "$INIT_SCRIPT" > "$w/init"; chmod 755 "$w/init"
    : > "$w/modules.list"
    for m in $(mod_closure $INITRD_MODS); do
        mkdir -p "$w/lib/modules/$(dirname "$m")"
        cp "$KMOD/$m" "$w/lib/modules/$m"
        echo "$m" >> "$w/modules.list"
    done
    (cd "$w" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.tmp"
    mv "$INITRD.tmp" "$INITRD"
    rm -rf "$w"; trap - EXIT
fi

# --- base root filesystem -----------------------------------------------------
# debootstrap only lays down the base (it does not resolve virtual packages);
# apt inside the chroot then installs camsvc's runtime dependencies, read from
# the .deb (first alternative of each), from the same mirrors and suites as the
# host (bookworm, -updates, -security): the .deb later installs offline.
deb_deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g; s/:[a-z0-9]*$//' | grep -v '^$' | sort -u | paste -sd' ' -)
# dbus: systemd-run (the sandbox probe) needs the system bus.
BASE_PKGS="systemd-sysv,udev,kmod,iproute2,v4l-utils,python3,procps,dbus"
BASE_SETUP=$(cat "$HERE/guest/setup-rootfs.sh")
SOURCES=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
bkey=$( (echo "$RECIPE $SUITE $MIRROR $BASE_PKGS $deb_deps"; echo "$SOURCES"; echo "$BASE_SETUP") | hash_of)
ROOTFS=$CACHE/rootfs-$bkey

# shellcheck source=tests/system/mounts.sh
. "$HERE/mounts.sh"

if [ ! -e "$ROOTFS/.done" ]; then
    safe_rm "$ROOTFS" "$ROOTFS.tmp"
    R=$ROOTFS.tmp
    log "debootstrap $SUITE from $MIRROR"
    t0=$(date +%s)
    debootstrap --variant=minbase --include="$BASE_PKGS" "$SUITE" "$R" "$MIRROR" \
        > "$CACHE/debootstrap.log" 2>&1 || { tail -30 "$CACHE/debootstrap.log" >&2; unmount_under "$R"; exit 1; }
    log "debootstrap took $(( $(date +%s) - t0 )) s; apt-get install $deb_deps"
    t0=$(date +%s)
    rm -f "$R/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$R/etc/apt/sources.list.d/" 2>/dev/null || true
    [ -e /etc/apt/sources.list ] && cp /etc/apt/sources.list "$R/etc/apt/sources.list"
    printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"
    mount -t proc proc "$R/proc"
    trap 'unmount_under "$R"' EXIT
    chroot "$R" sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $deb_deps && apt-get clean" \
        > "$CACHE/apt-chroot.log" 2>&1 || { tail -30 "$CACHE/apt-chroot.log" >&2; exit 1; }
    unmount_under "$R"; trap - EXIT
    rm -f "$R/usr/sbin/policy-rc.d"; rm -rf "$R"/var/lib/apt/lists/*
    log "apt-get took $(( $(date +%s) - t0 )) s"
    # Only the modules the guest needs (vivid, virtio net, and what they pull in).
    for m in $(mod_closure vivid virtio_net virtio_rng); do
        mkdir -p "$R/lib/modules/$KVER/$(dirname "$m")"
        cp "$KMOD/$m" "$R/lib/modules/$KVER/$m"
    done
    cp "$KMOD"/modules.order "$KMOD"/modules.builtin* "$R/lib/modules/$KVER/"
    depmod -b "$R" "$KVER"
    GUEST=$HERE/guest bash "$HERE/guest/setup-rootfs.sh" "$R"
    rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/usr/share/{doc,man,info,locale}/*
    mv "$R" "$ROOTFS"
    touch "$ROOTFS/.done"
    # Older bases are dead weight (~1 GB each).
    for old in "$CACHE"/rootfs-*; do [ "$old" = "$ROOTFS" ] || safe_rm "$old"; done
fi

# --- test image: base + camsvc .deb + config ---------------------------------
GUEST_CONFIG=$(readlink -f "$GUEST_CONFIG")
# The MediaMTX stand-in (publish mode) for test_unplug_during_recording_cycles:
# copied as it is into /opt/camsvc-e2e/standin, run by the control listener.
STANDIN_FILES=$(cd "$TOP" && ls tests/__init__.py tests/support/__init__.py tests/support/openapi.py \
    tests/support/mediamtx/*.py tests/data/mediamtx.yml tests/data/mediamtx-openapi.yaml)
gkey=$( (echo "$RECIPE $bkey"; sha256sum "$DEB" "$GUEST_CONFIG" "$HERE"/guest/install-camsvc.sh "$HERE"/guest/control.py "$TOP"/bench/broadcaster.py | cut -d' ' -f1; cd "$TOP" && sha256sum $STANDIN_FILES) | hash_of)
IMAGE=$CACHE/image-$gkey.ext4
if [ ! -e "$IMAGE" ]; then
    log "assembling image with $(basename "$DEB")"
    t0=$(date +%s)
    work=$(mktemp -d "$CACHE/work.XXXXXX"); trap 'safe_rm "$work"' EXIT
    cp -a "$ROOTFS/." "$work/"
    rm -f "$work/.done"
    cp "$DEB" "$work/tmp/camsvc.deb"
    cp "$GUEST_CONFIG" "$work/tmp/camsvc-test.yaml"
    cp "$HERE/guest/install-camsvc.sh" "$HERE/guest/control.py" "$TOP/bench/broadcaster.py" "$work/tmp/"
    for f in $STANDIN_FILES; do install -D -m 644 "$TOP/$f" "$work/opt/camsvc-e2e/standin/$f"; done
    # As on a real system, maintainer scripts see /proc (systemd-tmpfiles needs it).
    mount -t proc proc "$work/proc"
    chroot "$work" /bin/sh /tmp/install-camsvc.sh > "$CACHE/install-camsvc.log" 2>&1 \
        || { cat "$CACHE/install-camsvc.log" >&2; exit 1; }
    unmount_under "$work"
    # The credentials minted in the image, for the host-side test client.
    install -m 600 "$work/etc/camsvc-e2e/token" "$IMAGE.token"
    rm -f "$work"/tmp/camsvc.deb "$work"/tmp/install-camsvc.sh "$work"/tmp/camsvc-test.yaml "$work"/tmp/control.py "$work"/tmp/broadcaster.py
    # 1.5x the content + 256 MiB of room for logs, snapshots and the journal.
    size_mb=$(( $(du -sm "$work" | cut -f1) * 3 / 2 + 256 ))
    mke2fs -q -t ext4 -L camsvc-e2e -E root_owner=0:0 -d "$work" "$IMAGE.tmp" "${size_mb}M"
    mv "$IMAGE.tmp" "$IMAGE"
    safe_rm "$work"; trap - EXIT
    log "image assembled in $(( $(date +%s) - t0 )) s ($size_mb MiB)"
    ls -t "$CACHE"/image-*.ext4 | tail -n +3 | while read -r old; do rm -f "$old" "$old.token"; done
fi

# Artefacts of older kernels/recipes are never used again.
for old in "$CACHE"/initrd-*.cpio.gz; do [ "$old" = "$INITRD" ] || rm -f "$old"; done
for old in "$CACHE"/kernel-*; do [ "$old" = "$KDIR" ] || rm -rf "$old"; done

cat > "$CACHE/current.env" <<EOF
KERNEL=$KERNEL
INITRD=$INITRD
IMAGE=$IMAGE
TOKEN=$IMAGE.token
EOF
# Started by another user (through sudo): what that user's test reads is theirs.
if [ -n "${CAMSVC_OWNER:-}" ]; then
    chown "$CAMSVC_OWNER" "$CACHE" "$CACHE/current.env" "$INITRD" "$IMAGE" "$IMAGE.token"
fi
cat "$CACHE/current.env" | paste -sd' ' -
