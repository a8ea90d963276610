#!/bin/sh
# camsvc health and metrics from the shell, with curl and jq.
#
#   examples/health.sh [BASE_URL]        (default http://127.0.0.1:8002)
#
# Prints liveness, readiness (with the reasons when not ready), the API's
# method count and a few Prometheus metrics.  Exit status: 0 ready,
# 1 not ready (camsvc answers but e.g. MediaMTX is down), 2 unreachable.
# Suitable for cron or a monitoring check.  The files downloads and the
# /metrics endpoint may need a token: set CAMSVC_TOKEN (a JWT or API key).
set -u
BASE=${1:-${CAMSVC_HTTP:-http://127.0.0.1:8002}}
BASE=${BASE%/}

auth_header() {
    # A JWT has two dots; anything else is an API key.
    case "${CAMSVC_TOKEN:-}" in
        "") echo "X-Nothing: 1" ;;
        *.*.*) echo "Authorization: Bearer $CAMSVC_TOKEN" ;;
        *) echo "X-API-Key: $CAMSVC_TOKEN" ;;
    esac
}

if ! live=$(curl -fsS --max-time 5 "$BASE/health/live" 2>&1); then
    echo "camsvc at $BASE is unreachable: $live" >&2
    exit 2
fi
echo "live:     $(echo "$live" | jq -r .status)"

# /health/ready answers 503 with the reasons when not ready: keep the body.
ready=$(curl -sS --max-time 5 -w '\n%{http_code}' "$BASE/health/ready")
code=$(echo "$ready" | tail -n 1)
body=$(echo "$ready" | sed '$d')
echo "ready:    $(echo "$body" | jq -r .status) (HTTP $code)"
echo "$body" | jq -r '.checks | to_entries[] | "  \(.key): \(if .value.ok then "ok" else "FAILING: \(.value.reason)" end)"'

methods=$(curl -fsS --max-time 5 "$BASE/openrpc.json" | jq '.methods | length')
echo "api:      $methods methods (see $BASE/openrpc.json)"

metrics=$(curl -sS --max-time 5 -H "$(auth_header)" -w '\n%{http_code}' "$BASE/metrics")
mcode=$(echo "$metrics" | tail -n 1)
if [ "$mcode" = 200 ]; then
    samples=$(echo "$metrics" | sed '$d' | grep -vc '^#')
    echo "metrics:  $samples samples; camsvc's own:"
    echo "$metrics" | sed '$d' | grep -E '^camsvc_' | head -n 15 | sed 's/^/  /'
else
    echo "metrics:  not available (HTTP $mcode)"
fi

[ "$code" = 200 ] && exit 0
exit 1
