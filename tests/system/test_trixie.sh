#!/bin/bash
# make test-trixie: the freshly built .deb on Debian 13 (trixie) under systemd.
#
#   tests/system/test_trixie.sh DEB
#
# A trixie root filesystem is debootstrapped (minbase + systemd, udev, dbus and
# python3-websockets for the test's client) from the same Debian mirror apt
# uses here, with camsvc's dependencies installed except procps (camsvc's
# Depends must bring /bin/kill for ExecReload), which is only downloaded.  The
# guest boots (QEMU, TCG, no network at all) with the kernel and busybox
# initramfs of build_image.sh (cache/current.env: Debian 12's kernel) and runs
# trixie/guest-test.sh once: apt-get install of the .deb, ready, ping with a
# camsvc-admin token, systemctl reload, in-place upgrade to a newer version
# (the same .deb repacked as VERSION+upgradetest1), purge.  This script reads
# the verdict from the serial console.
#
# Cache (tests/system/cache/, gitignored): trixie-rootfs-<hash>/ (~500 MB,
# rebuilt when the recipe, the mirror or the .deb's Depends change), the last
# trixie-image-<hash>.ext4, trixie-serial.log.  Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CAMSVC_SYSTEM_CACHE:-$HERE/cache}
SUITE=trixie
RECIPE=3
DEB=$(readlink -f "${1:?usage: test_trixie.sh path/to/camsvc_VERSION_all.deb}")
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
log() { printf '[test_trixie %(%T)T] %s\n' -1 "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }
[ "$(id -u)" = 0 ] || { echo "test_trixie.sh must run as root" >&2; exit 1; }

MIRROR=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
SECURITY=${MIRROR%/debian}/debian-security
[[ $SECURITY == */debian-security ]] || SECURITY=http://deb.debian.org/debian-security

# shellcheck source=tests/system/mounts.sh
. "$HERE/mounts.sh"

# --- trixie base with camsvc's dependencies in the apt cache -------------------
deb_deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g; s/:[a-z0-9]*$//' | grep -v '^$' | sort -u | paste -sd' ' -)
BASE_PKGS="systemd-sysv,udev,dbus,python3-websockets"
SOURCES="Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"
bkey=$( (echo "$RECIPE $SUITE $MIRROR $BASE_PKGS $deb_deps"; echo "$SOURCES") | hash_of)
ROOTFS=$CACHE/trixie-rootfs-$bkey
mkdir -p "$CACHE"
if [ ! -e "$ROOTFS/.done" ]; then
    safe_rm "$ROOTFS" "$ROOTFS.tmp"
    R=$ROOTFS.tmp
    log "debootstrap $SUITE from $MIRROR"
    t0=$(date +%s)
    debootstrap --variant=minbase --include="$BASE_PKGS" "$SUITE" "$R" "$MIRROR" \
        > "$CACHE/trixie-debootstrap.log" 2>&1 || { tail -30 "$CACHE/trixie-debootstrap.log" >&2; unmount_under "$R"; exit 1; }
    # camsvc's dependencies are installed here (natively: apt in the TCG guest
    # takes minutes per hundred packages), except procps: the guest's apt must
    # bring /bin/kill through camsvc's Depends for `systemctl reload` to work.
    pre_deps=$(echo "$deb_deps" | tr ' ' '\n' | grep -vx procps | paste -sd' ' -)
    log "debootstrap took $(( $(date +%s) - t0 )) s; installing $pre_deps"
    t0=$(date +%s)
    rm -f "$R/etc/apt/sources.list"
    printf '%s' "$SOURCES" > "$R/etc/apt/sources.list.d/debian.sources"
    printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"
    mount -t proc proc "$R/proc"
    trap 'unmount_under "$R"' EXIT
    # What is still missing for the .deb (procps) is only downloaded, resolved
    # against the lists, so `apt-get install ./camsvc.deb` in the offline guest finds it.
    # Without Recommends (ffmpeg's pull in ~200 more packages).
    cp "$DEB" "$R/tmp/camsvc.deb"
    chroot "$R" sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $pre_deps \
        && apt-get clean && apt-get install -y -q --no-install-recommends --download-only /tmp/camsvc.deb" \
        > "$CACHE/trixie-apt.log" 2>&1 || { tail -30 "$CACHE/trixie-apt.log" >&2; exit 1; }
    # apt keeps a copy of the local .deb there, which confuses the real install.
    rm -f "$R/tmp/camsvc.deb" "$R"/var/cache/apt/archives/camsvc_*.deb "$R/usr/sbin/policy-rc.d"
    chroot "$R" dpkg-query -W procps >/dev/null 2>&1 && { echo "procps got installed in the base" >&2; exit 1; }
    unmount_under "$R"; trap - EXIT
    log "apt-get took $(( $(date +%s) - t0 )) s; left for the guest: $(ls "$R"/var/cache/apt/archives/ | grep -c '\.deb$') packages"
    # The guest: no network, no getty, root's console only; the test unit.
    echo camsvc-trixie > "$R/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 camsvc-trixie\n' > "$R/etc/hosts"
    printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$R/etc/fstab"
    mkdir -p "$R/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\n' > "$R/etc/systemd/journald.conf.d/test.conf"
    for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
             getty@tty1.service serial-getty@ttyS0.service systemd-timesyncd.service \
             systemd-networkd-wait-online.service systemd-logind.service; do
        ln -sf /dev/null "$R/etc/systemd/system/$u"
    done
    cat > "$R/etc/systemd/system/camsvc-trixie-test.service" <<'U'
[Unit]
Description=camsvc on Debian 13: install, ready, ping, reload, upgrade, purge (test image only)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/lib/camsvc-trixie/guest-test.sh
StandardOutput=journal+console
StandardError=journal+console
U
    mkdir -p "$R/etc/systemd/system/default.target.wants"
    ln -sf /etc/systemd/system/camsvc-trixie-test.service "$R/etc/systemd/system/default.target.wants/"
    rm -rf "$R"/usr/share/{doc,man,info,locale}/*
    mv "$R" "$ROOTFS"
    touch "$ROOTFS/.done"
    for old in "$CACHE"/trixie-rootfs-*; do [ "$old" = "$ROOTFS" ] || safe_rm "$old"; done
fi

# --- image: base + the .deb, a newer version of it, the test -----------------
IMAGE=$CACHE/trixie-image-$( (echo "$bkey"; sha256sum "$DEB" "$HERE/trixie/guest-test.sh" "$HERE/ws_ping.py" | cut -d' ' -f1) | hash_of).ext4
if [ ! -e "$IMAGE" ]; then
    log "assembling image with $(basename "$DEB")"
    work=$(mktemp -d "$CACHE/trixie-work.XXXXXX"); trap 'safe_rm "$work"' EXIT
    cp -a "$ROOTFS/." "$work/"; rm -f "$work/.done"
    d=$work/usr/local/lib/camsvc-trixie; mkdir -p "$d"
    cp "$DEB" "$d/camsvc.deb"
    cp "$HERE/trixie/guest-test.sh" "$HERE/ws_ping.py" "$d/"
    # The upgrade: the same payload as a newer version, as the next release would be.
    x=$(mktemp -d); dpkg-deb -R "$DEB" "$x/p"
    sed -i 's/^Version: .*/&+upgradetest1/' "$x/p/DEBIAN/control"
    dpkg-deb -b --root-owner-group "$x/p" "$d/camsvc-upgrade.deb" >/dev/null; rm -rf "$x"
    size_mb=$(( $(du -sm "$work" | cut -f1) * 3 / 2 + 512 ))
    mke2fs -q -t ext4 -L camsvc-trixie -E root_owner=0:0 -d "$work" "$IMAGE.tmp" "${size_mb}M"
    mv "$IMAGE.tmp" "$IMAGE"
    safe_rm "$work"; trap - EXIT
    for old in "$CACHE"/trixie-image-*.ext4; do [ "$old" = "$IMAGE" ] || rm -f "$old"; done
fi

# --- boot it; the guest powers off when its test is done -----------------------
[ -e "$CACHE/current.env" ] || { echo "no $CACHE/current.env: run make system-image first" >&2; exit 1; }
# Only the kernel and initramfs of the bookworm guest (its IMAGE is not ours).
KERNEL=$(sed -n 's/^KERNEL=//p' "$CACHE/current.env"); INITRD=$(sed -n 's/^INITRD=//p' "$CACHE/current.env")
SERIAL=$CACHE/trixie-serial.log
: > "$SERIAL"
log "booting $(basename "$IMAGE") (kernel $(basename "$KERNEL"))"
t0=$(date +%s)
rc=0
flock /tmp/qemu.lock timeout --signal=KILL 1500 qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=error mitigations=off" \
    -drive "file=$IMAGE,if=virtio,format=raw,snapshot=on" -nic none -device virtio-rng-pci \
    -display none -monitor none -no-reboot -serial "file:$SERIAL" </dev/null || rc=$?
log "guest ran $(( $(date +%s) - t0 )) s (qemu exit $rc; the wait for /tmp/qemu.lock included)"
grep -a 'CAMSVC-TRIXIE:' "$SERIAL" | grep -av 'Reading database' | sed 's/^.*CAMSVC-TRIXIE: /  /' || true
if grep -aq 'CAMSVC-TRIXIE: PASS' "$SERIAL"; then
    echo "test-trixie: OK"
else
    echo "test-trixie: FAIL (console: $SERIAL)" >&2
    grep -aq 'CAMSVC-TRIXIE:' "$SERIAL" || tail -40 "$SERIAL" >&2
    exit 1
fi
