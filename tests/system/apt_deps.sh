#!/bin/sh
# Install (only if missing) what a make target needs from Debian, so the
# targets run on a fresh Debian 12 machine: as root (CI) or as a user with sudo
# (apt-get goes through tools/as-root).
#   apt_deps.sh build      debian/control's Build-Depends (+ dpkg-dev)
#   apt_deps.sh test-deb   lintian, systemd-analyze, the smoke test's client
#   apt_deps.sh deb12-libs Debian's runtime libraries and test tools
set -eu
export DEBIAN_FRONTEND=noninteractive
AS_ROOT="$(cd "$(dirname "$0")/../.." && pwd)/tools/as-root"

apt_install() {
    echo "installing Debian packages: $*" >&2
    "$AS_ROOT" apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
        "$AS_ROOT" apt-get update -q >/dev/null
        "$AS_ROOT" apt-get install -y -q --no-install-recommends "$@" >/dev/null
    }
}

missing() {  # print the packages among "$@" that are not installed
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
    done
}

case "$1" in
build)
    m=$(missing dpkg-dev fakeroot)
    [ -z "$m" ] || apt_install $m
    if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
        "$AS_ROOT" apt-get build-dep -y -q ./ >/dev/null 2>&1 || {
            "$AS_ROOT" apt-get update -q >/dev/null
            "$AS_ROOT" apt-get build-dep -y -q ./ >/dev/null
        }
    fi
    ;;
test-deb)
    m=$(missing lintian systemd python3-websockets)
    [ -z "$m" ] || apt_install $m
    ;;
deb12-libs)
    # camsvc's runtime dependencies as the .deb declares them, plus the test tools.
    m=$(missing python3-venv python3-twisted python3-autobahn python3-treq python3-pyudev python3-yaml \
        python3-jwt python3-prometheus-client python3-service-identity python3-setuptools \
        python3-pytest python3-pytest-twisted python3-hypothesis python3-jsonschema python3-selenium ffmpeg \
        python3-paho-mqtt mosquitto)
    [ -z "$m" ] || apt_install $m
    ;;
*)
    echo "usage: $0 build|test-deb|deb12-libs" >&2; exit 2 ;;
esac
