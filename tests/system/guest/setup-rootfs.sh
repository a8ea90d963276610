#!/bin/bash
# Configure a freshly debootstrapped rootfs ($1) as the e2e guest: static
# network for QEMU user-mode networking, journal on the serial console, vivid
# loaded at boot, the test's control listener, nothing slow at boot.
# Runs on the host; $GUEST is tests/system/guest.
set -euo pipefail
R=$1

echo camsvc-e2e > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 camsvc-e2e\n' > "$R/etc/hosts"
printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$R/etc/fstab"
# Empty root password is never reachable: no getty, no sshd; console only.
chroot "$R" passwd -dq root 2>/dev/null || chroot "$R" passwd -d root >/dev/null

# QEMU user-mode network: static address, no DHCP wait.  udev renames the NIC,
# so match on the type, not on "eth0".
mkdir -p "$R/etc/systemd/network"
cat > "$R/etc/systemd/network/10-e2e.network" <<'NET'
[Match]
Type=ether

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"

# A volatile journal (the disk is a throw-away snapshot anyway).  Only
# camsvc's own output is copied to the serial console (a unit drop-in added at
# image assembly): emulated serial output is slow under TCG.
mkdir -p "$R/etc/systemd/journald.conf.d"
cat > "$R/etc/systemd/journald.conf.d/e2e.conf" <<'J'
[Journal]
Storage=volatile
J

# The real kernel cameras: two vivid instances under the one platform device
# vivid.0 (one unbind removes both).  The first has vivid's default node set
# (capture, output, VBI, radio, SDR, metadata, touch: the nodes camsvc must not
# list); the second only a video capture node (0x1), which keeps udev's work per
# unplug/plug small under TCG.  Both capture nodes get the same by-path name
# (ID_PATH platform-vivid.0, index 0 within each instance): only one owns the link.
echo vivid > "$R/etc/modules-load.d/vivid.conf"
echo 'options vivid n_devs=2 node_types=0xe1d3d,0x1' > "$R/etc/modprobe.d/vivid.conf"

# Units that only cost boot time in a throw-away guest.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
         fstrim.timer man-db.timer getty@tty1.service serial-getty@ttyS0.service \
         systemd-timesyncd.service systemd-networkd-wait-online.service \
         systemd-logind.service systemd-update-utmp.service systemd-update-utmp-runlevel.service; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done
