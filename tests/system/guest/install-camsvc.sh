#!/bin/sh
# Runs inside the guest rootfs (chroot) at image assembly: install the freshly
# built .deb with dpkg exactly as an operator would (its maintainer scripts
# create the user, the state directories and enable the unit), then put the
# test configuration in place of the conffile.
set -e
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
dpkg -i /tmp/camsvc.deb
install -m 0640 -o root -g camsvc /tmp/camsvc-test.yaml /etc/camsvc/camsvc.yaml
# The host's command channel into the guest (test image only, never packaged).
install -D -m 755 /tmp/control.py /usr/local/lib/camsvc-e2e/control.py
cat > /etc/systemd/system/camsvc-e2e-control.service <<'U'
[Unit]
Description=camsvc e2e test control listener (test image only)
After=network.target

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/camsvc-e2e/control.py --port 8003

[Install]
WantedBy=multi-user.target
U
systemctl enable camsvc-e2e-control.service
# camsvc's log also on the serial console (the host keeps it in serial.log).
mkdir -p /etc/systemd/system/camsvc.service.d
printf '[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n' \
    > /etc/systemd/system/camsvc.service.d/e2e-console.conf
# Evidence for the test: the package's maintainer scripts did their job.
id camsvc
test -L /etc/systemd/system/multi-user.target.wants/camsvc.service
test -f /usr/lib/python3/dist-packages/twisted/plugins/dropin.cache
ls -ld /var/lib/camsvc /var/lib/camsvc/recordings
if command -v camsvc-admin >/dev/null 2>&1 && [ -x /tmp/mint-token.sh ]; then
    /tmp/mint-token.sh
fi
