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
# The latency baseline (bench/broadcaster.py), run beside camsvc by /measure/latency.
install -m 644 /tmp/broadcaster.py /usr/local/lib/camsvc-e2e/broadcaster.py
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
# MediaMTX's own account as docs/deployment.md sets it up (MediaMTX itself is
# not in Debian; the test writes a recording as this user instead).
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --user-group --groups video,camsvc mediamtx
# camsvc's log also on the serial console (the host keeps it in serial.log).
mkdir -p /etc/systemd/system/camsvc.service.d
printf '[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n' \
    > /etc/systemd/system/camsvc.service.d/e2e-console.conf
# Evidence for the test: the package's maintainer scripts did their job.
id camsvc
test -L /etc/systemd/system/multi-user.target.wants/camsvc.service
test -f /usr/lib/python3/dist-packages/twisted/plugins/dropin.cache
ls -ld /var/lib/camsvc /var/lib/camsvc/recordings
# First credentials, made with the packaged camsvc-admin as root exactly as
# docs/deployment.md tells an operator to: a JWT for the host-side test client
# and an API key for the guest-side measuring client.  Both are written to
# /etc/camsvc-e2e/ (test image only); build_image.sh copies them to the host.
mkdir -p /etc/camsvc-e2e
camsvc-admin token --role admin --subject e2e-host --lifetime 31536000 > /etc/camsvc-e2e/token
camsvc-admin key create --role admin --name e2e-guest > /etc/camsvc-e2e/api_key
chmod 600 /etc/camsvc-e2e/*
ls -l /var/lib/camsvc/jwt_secret /var/lib/camsvc/api_keys.json
test "$(stat -c %U /var/lib/camsvc/jwt_secret)" = camsvc
