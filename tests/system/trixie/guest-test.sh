#!/bin/sh
# Runs once at boot inside the Debian 13 guest (camsvc-trixie-test.service),
# as an operator would on a fresh trixie machine: apt installs the freshly
# built .deb (dependencies from the image's apt cache: the guest has no
# network), the unit starts and becomes ready, answers ping with a token from
# camsvc-admin, reloads with `systemctl reload`, is upgraded in place by a
# newer package, and is purged.  Every line of evidence goes to the serial
# console prefixed "CAMSVC-TRIXIE:"; the last one is "PASS" or "FAIL: why".
# Then the guest powers off (tests/system/test_trixie.sh reads the console).
set -u
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
HERE=/usr/local/lib/camsvc-trixie
step() { echo "CAMSVC-TRIXIE: $*"; }
finish() { sync; systemctl poweroff --no-block; exit "$1"; }
fail() {
    step "FAIL: $*"
    journalctl -u camsvc --no-pager -n 40 -o cat | sed 's/^/CAMSVC-TRIXIE: journal: /'
    finish 1
}
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }
prop() { systemctl show -P "$1" camsvc; }
# apt-get install, its output on the console as it goes (and in /tmp/apt.log).
apt_install() {
    { apt-get install -y -q --no-install-recommends "$@" 2>&1; echo $? > /tmp/apt.rc; } \
        | tee /tmp/apt.log | sed -u 's/^/CAMSVC-TRIXIE: apt: /'
    return "$(cat /tmp/apt.rc)"
}

wait_active() {  # Type=notify: "active" only once camsvc sent READY=1
    for _ in $(seq 1 180); do
        s=$(systemctl is-active camsvc)
        [ "$s" = active ] && return 0
        [ "$s" = failed ] && return 1
        sleep 1
    done
    return 1
}

. /etc/os-release
step "guest: $PRETTY_NAME (debian_version $(cat /etc/debian_version)), kernel $(uname -r), $(systemctl --version | head -1), $(python3 --version)"
[ -e /usr/bin/kill ] && fail "procps is preinstalled: the test must see camsvc's Depends bring /bin/kill"

step "apt-get install ./camsvc.deb ($(dpkg-deb -f $HERE/camsvc.deb Version))"
apt_install $HERE/camsvc.deb || fail "apt-get install"
dpkg-query -W -f='${Status}\n' procps | grep -q 'install ok installed' || fail "procps not installed with camsvc"
step "installed in $(elapsed): $(grep -c '^Setting up' /tmp/apt.log) packages set up"

wait_active || fail "camsvc not active after install: $(systemctl is-active camsvc)"
step "unit active (READY=1) $(elapsed) after start of test; status: $(prop StatusText)"
pid1=$(prop MainPID); inv1=$(prop InvocationID)
[ "$(ps -o user= -p "$pid1")" = camsvc ] || fail "main process not running as camsvc"

step "camsvc-admin token, then ping over ws://127.0.0.1:8002/ws"
token=$(camsvc-admin token --role admin --lifetime 3600) || fail "camsvc-admin token"
python3 $HERE/ws_ping.py --wait 60 --token "$token" ws://127.0.0.1:8002/ws | sed 's/^/CAMSVC-TRIXIE: /'
[ "$(python3 $HERE/ws_ping.py --token "$token" ws://127.0.0.1:8002/ws > /dev/null 2>&1; echo $?)" = 0 ] || fail "no pong / authenticate failed"

step "systemctl reload camsvc (ExecReload: $(prop ExecReload | sed 's/.*path=\([^ ;]*\).*/\1/'))"
sed -i 's/^  level: info$/  level: debug/' /etc/camsvc/camsvc.yaml
grep -q '^  level: debug$' /etc/camsvc/camsvc.yaml || fail "could not edit logging.level in the conffile"
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl reload camsvc || fail "systemctl reload failed"
ok=0
for _ in $(seq 1 60); do
    journalctl -u camsvc --since "$since" --no-pager -o cat | grep -q 'Configuration reloaded' && { ok=1; break; }
    sleep 1
done
[ $ok = 1 ] || fail "no 'Configuration reloaded' in the journal after systemctl reload"
journalctl -u camsvc --since "$since" --no-pager -o cat | grep 'Configuration reloaded' | head -2 | sed 's/^/CAMSVC-TRIXIE: journal: /'
[ "$(prop MainPID)" = "$pid1" ] || fail "reload restarted the process"
wait_active || fail "not active after reload"
step "reload OK: same MainPID $pid1, active"

step "upgrade: apt-get install ./camsvc-upgrade.deb ($(dpkg-deb -f $HERE/camsvc-upgrade.deb Version)) over the running service"
since=$(date '+%Y-%m-%d %H:%M:%S')
apt_install -o Dpkg::Options::=--force-confold $HERE/camsvc-upgrade.deb || fail "upgrade"
wait_active || fail "not active after the upgrade"
[ "$(prop InvocationID)" != "$inv1" ] || fail "the upgrade did not restart the service"
grep -q '^  level: debug$' /etc/camsvc/camsvc.yaml || fail "the upgrade lost the conffile edit"
python3 $HERE/ws_ping.py --wait 60 --token "$token" ws://127.0.0.1:8002/ws > /dev/null 2>&1 \
    || fail "the token minted before the upgrade no longer works (JWT secret lost?)"
[ "$(prop NRestarts)" = 0 ] || fail "the unit needed $(prop NRestarts) automatic restarts"
# The postinst told the stopping service that this was an upgrade (recording.on_upgrade);
# the new version consumed the marker when it started.
journalctl -u camsvc --since "$since" --no-pager -o cat | grep -q 'Started after a package upgrade' \
    || fail "the new version did not see the upgrade marker"
[ ! -e /var/lib/camsvc/upgrade-restart ] || fail "upgrade marker left behind"
journalctl -u camsvc --since "$since" --no-pager -o cat | grep -iE 'shut|stopp|Received SIG' | head -4 | sed 's/^/CAMSVC-TRIXIE: journal: /'
step "upgrade OK: restarted once (MainPID $pid1 -> $(prop MainPID)), marker seen and removed, conffile edit kept, old token accepted"

step "apt-get purge camsvc"
apt-get purge -y -q camsvc > /tmp/apt.log 2>&1 || { sed 's/^/CAMSVC-TRIXIE: apt: /' /tmp/apt.log | tail -20; fail "purge"; }
[ "$(systemctl is-active camsvc)" != active ] || fail "still active after purge"
dpkg-query -W -f='${Status}\n' camsvc 2>/dev/null | grep -q installed && fail "camsvc still known to dpkg"
for p in /etc/camsvc /var/lib/camsvc /lib/systemd/system/camsvc.service /usr/lib/systemd/system/camsvc.service \
         /etc/systemd/system/multi-user.target.wants/camsvc.service /usr/bin/camsvc-admin \
         /usr/lib/python3/dist-packages/twisted/plugins/camsvc_plugin.py /usr/lib/python3/dist-packages/camsvc; do
    [ -e "$p" ] && fail "left after purge: $p"
done
python3 -c "import pickle; c = pickle.load(open('/usr/lib/python3/dist-packages/twisted/plugins/dropin.cache', 'rb')); assert 'camsvc_plugin' not in c" \
    || fail "dropin.cache still lists camsvc after purge"
pgrep -u camsvc >/dev/null 2>&1 && fail "processes of user camsvc left"
step "purge OK: no files, no unit, no processes left"
step "PASS in $(elapsed)"
finish 0
