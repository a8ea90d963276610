#!/bin/sh
# make test-deb, after the build and lintian: install the .deb on this machine
# (a throw-away CI machine or a developer's test box) and check it as an
# operator would, then purge it again.  Runs as root: started by another user,
# it runs itself again through sudo (tools/as-root).
#   tests/system/test_deb.sh dist/deb/camsvc_VERSION_all.deb
set -eu
DEB=$(readlink -f "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || exec "$HERE/../../tools/as-root" sh "$HERE/test_deb.sh" "$DEB"
PY=/usr/bin/python3
PLUGINS=/usr/lib/python3/dist-packages/twisted/plugins
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin

step() { printf '\n=== test-deb: %s\n' "$*"; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

step "systemd-analyze verify (unit as shipped)"
x=$(mktemp -d); trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$DEB" "$x/root"
unit=$x/root/lib/systemd/system/camsvc.service
# verify wants ExecStart= to exist: twistd3 is python3-twisted's, installed below
# at the latest, so verify after install; here only the syntax.
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$unit" 2>"$x/verify.err" || true
grep -v 'twistd3' "$x/verify.err" | grep . && fail "systemd-analyze verify: $(cat "$x/verify.err")"
score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for camsvc.service: \([0-9.]*\).*/\1/p')
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }' || fail "exposure $score > 2.5"

step "apt-get install $(basename "$DEB")"
# --reinstall: a rebuilt .deb of an already installed version must replace it.
apt-get install -y -q --reinstall "$DEB" >"$x/apt.log" 2>&1 || { cat "$x/apt.log"; fail "apt-get install"; }
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no /lib/systemd/system/camsvc.service \
    || fail "systemd-analyze verify of the installed unit"

step "maintainer scripts: user, groups, directories, conffile"
id camsvc
id -nG camsvc | tr ' ' '\n' | grep -qx video || fail "camsvc is not in group video"
[ "$(stat -c %U:%G:%a /var/lib/camsvc/recordings)" = camsvc:camsvc:2770 ] \
    || fail "recordings dir: $(stat -c %U:%G:%a /var/lib/camsvc/recordings)"
dpkg-query -W -f='${Conffiles}\n' camsvc | grep -q /etc/camsvc/camsvc.yaml || fail "conffile not registered"
[ "$(stat -c %U:%G:%a /etc/camsvc/camsvc.yaml)" = root:camsvc:640 ] \
    || fail "conffile permissions: $(stat -c %U:%G:%a /etc/camsvc/camsvc.yaml)"
[ -L /etc/systemd/system/multi-user.target.wants/camsvc.service ] || fail "unit not enabled"

step "twisted plugin cache rebuilt by the twisted-plugins-cache trigger"
[ -f $PLUGINS/dropin.cache ] || fail "no dropin.cache"
$PY - <<EOF || fail "dropin.cache does not list camsvc_plugin or is older than it"
import os, pickle
d = "$PLUGINS"
cache = pickle.load(open(os.path.join(d, "dropin.cache"), "rb"))
assert "camsvc_plugin" in cache, sorted(cache)
assert os.path.getmtime(os.path.join(d, "dropin.cache")) >= os.path.getmtime(os.path.join(d, "camsvc_plugin.py"))
print("dropin.cache lists", [p.name for p in cache["camsvc_plugin"].plugins])
EOF
# The service user reads the cache and must never need to rewrite it.
before=$(stat -c %Y $PLUGINS/dropin.cache)
setpriv --reuid=camsvc --regid=camsvc --init-groups -- /usr/bin/twistd3 --help > "$x/help.txt"
grep -qE '^ +camsvc +' "$x/help.txt" || { cat "$x/help.txt"; fail "twistd3 --help does not list camsvc"; }
grep -E '^ +camsvc +' "$x/help.txt"
[ "$(stat -c %Y $PLUGINS/dropin.cache)" = "$before" ] || fail "dropin.cache was rewritten"

step "the unit's ExecStart from the installed files, as user camsvc: ping, camsvc-admin JWT and API key"
port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run=$x/run; mkdir -p "$run"
sed "s/@PORT@/$port/g; s|@DIR@|$run|g" "$HERE/deb-smoke.yaml" > "$x/camsvc.yaml"
chown -R camsvc:camsvc "$run"; chmod 755 "$x"; chmod 644 "$x/camsvc.yaml"
# The first credentials, as docs/deployment.md says: camsvc-admin run as root
# writes files owned by the state directory's owner (camsvc).
token=$(camsvc-admin --config "$x/camsvc.yaml" token --role admin --lifetime 600) || fail "camsvc-admin token"
key=$(camsvc-admin --config "$x/camsvc.yaml" key create --role viewer --name test-deb) || fail "camsvc-admin key create"
[ "$(stat -c %U "$run/jwt_secret")" = camsvc ] || fail "jwt_secret not owned by camsvc: $(stat -c %U:%a "$run/jwt_secret")"
[ "$(stat -c %U "$run/api_keys.json")" = camsvc ] || fail "api_keys.json not owned by camsvc"
# The command the installed unit runs (python3 -I -B -m camsvc ..., twistd's runner without the
# plugin scan), with this test's configuration; `twistd3 camsvc` is checked below.
cmd=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/camsvc.service | sed "s|/etc/camsvc/camsvc.yaml|$x/camsvc.yaml|")
case $cmd in "/usr/bin/python3 -I -B -m camsvc "*"$x/camsvc.yaml") ;; *) fail "unexpected ExecStart: $cmd" ;; esac
# cd /: the service must not depend on its working directory for imports.
# shellcheck disable=SC2086 # the unit's command line, split into words as systemd does
(cd / && exec setpriv --reuid=camsvc --regid=camsvc --init-groups -- $cmd) \
    > "$x/twistd.log" 2>&1 &
pid=$!
ok=0
if $PY "$HERE/ws_ping.py" --wait 30 --token "$token" "ws://127.0.0.1:$port/ws" &&
   $PY "$HERE/ws_ping.py" --token "$(echo "$key" | grep -o 'camsvc_[A-Za-z0-9_.-]*' | head -1)" "ws://127.0.0.1:$port/ws"; then
    ok=1
fi
kill -TERM $pid 2>/dev/null || true
for i in $(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && { kill -KILL $pid; fail "camsvc did not stop on SIGTERM"; }
rc=0; wait $pid || rc=$?
# twistd re-raises the signal that stopped the reactor: 143 = killed by SIGTERM,
# which systemd counts as a clean stop.
[ $rc = 0 ] || [ $rc = 143 ] || { cat "$x/twistd.log"; fail "camsvc exited with $rc after SIGTERM"; }
[ $ok = 1 ] || { cat "$x/twistd.log"; fail "no pong"; }
# A traceback while serving fails the test; one during shutdown is reported
# loudly (a component's stopService bug) but is not a packaging failure.
sed '/Received SIGTERM/,$d' "$x/twistd.log" | grep -q 'Traceback' && { cat "$x/twistd.log"; fail "traceback in the log"; }
if sed -n '/Received SIGTERM/,$p' "$x/twistd.log" | grep -q 'Traceback'; then
    echo "test-deb: WARNING: traceback during shutdown:" >&2
    sed -n '/Received SIGTERM/,$p' "$x/twistd.log" | grep -B2 -A3 -E 'critical|Error' | head -20 >&2
fi
echo "log ($(wc -l < "$x/twistd.log") lines):"; sed 's/^/    /' "$x/twistd.log" | tail -n 15

step "twistd3 -n camsvc (the plugin, through the plugin cache) serves too"
(cd / && exec setpriv --reuid=camsvc --regid=camsvc --init-groups -- /usr/bin/twistd3 --nodaemon --pidfile= camsvc --config "$x/camsvc.yaml") \
    > "$x/twistd3.log" 2>&1 &
pid=$!
$PY "$HERE/ws_ping.py" --wait 30 --token "$token" "ws://127.0.0.1:$port/ws" \
    || { kill -KILL $pid; cat "$x/twistd3.log"; fail "twistd3 camsvc: no pong"; }
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc = 0 ] || [ $rc = 143 ] || { cat "$x/twistd3.log"; fail "twistd3 exited with $rc after SIGTERM"; }

step "reinstall over a locally edited conffile (the upgrade path of the maintainer scripts)"
echo "# local edit by test-deb" >> /etc/camsvc/camsvc.yaml
apt-get install -y -q --reinstall -o Dpkg::Options::=--force-confold "$DEB" >"$x/apt.log" 2>&1 \
    || { cat "$x/apt.log"; fail "reinstall"; }
grep -q "local edit by test-deb" /etc/camsvc/camsvc.yaml || fail "local conffile edit lost on reinstall"
[ "$(stat -c %U:%G:%a /etc/camsvc/camsvc.yaml)" = root:camsvc:640 ] \
    || fail "conffile permissions after reinstall: $(stat -c %U:%G:%a /etc/camsvc/camsvc.yaml)"
$PY -c "import pickle; c = pickle.load(open('$PLUGINS/dropin.cache', 'rb')); assert 'camsvc_plugin' in c" \
    || fail "dropin.cache lost camsvc on reinstall"
echo "conffile edit kept, 0640 root:camsvc, plugin cache intact"

step "apt-get purge camsvc"
apt-get purge -y -q camsvc >"$x/apt.log" 2>&1 || { cat "$x/apt.log"; fail "purge"; }
[ ! -e $PLUGINS/camsvc_plugin.py ] || fail "plugin left behind"
$PY -c "import pickle; c = pickle.load(open('$PLUGINS/dropin.cache', 'rb')); assert 'camsvc_plugin' not in c" \
    || fail "dropin.cache still lists camsvc after purge"
[ ! -e /var/lib/camsvc ] || fail "/var/lib/camsvc left after purge: $(ls -la /var/lib/camsvc)"
[ ! -e /etc/camsvc ] || fail "/etc/camsvc left after purge"
echo "test-deb: OK"
