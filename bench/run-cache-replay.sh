#!/usr/bin/env bash
# Cache replay: replays the recorded agent sessions (bench/workloads/agent-sessions.jsonl) through the gateway to
# its built-in simulator, once per mode, and writes bench/results/cache-replay.md. See bench/README.md.
#
#   bench/run-cache-replay.sh                      # all 213 sessions, 12 at a time (1–3 min on 2 cores)
#   SESSIONS=60 bench/run-cache-replay.sh          # a spread-out subset
#   PORT=5299 CONCURRENCY=8 VENDORS=openai,anthropic bench/run-cache-replay.sh
#
# The gateway is restarted for every gateway mode so the switches apply and the Arranger's memory starts empty.
# Only loopback traffic: the gateway listens on 127.0.0.1 and the simulator lives in the same process.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-5199}
SESSIONS=${SESSIONS:-all}
CONCURRENCY=${CONCURRENCY:-12}
VENDORS=${VENDORS:-openai,deepseek,anthropic}
KEY=${KEY:-sk-tr-bench-replay-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
SIM_KEY=${SIM_KEY:-sk-sim-bench-replay-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}  # the simulator's own key (Simulator:ApiKey)
RESULTS=bench/results/cache-replay.runs.tmp
MARKDOWN=bench/results/cache-replay.md
BASE=http://127.0.0.1:$PORT
LOGS=$(mktemp -d /tmp/tokenrouter-replay.XXXXXX)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if curl -s -o /dev/null --max-time 2 "$BASE/health"; then
  echo "Something already answers on $BASE; set PORT to a free port." >&2
  exit 1
fi

echo "== build (Release)"
dotnet build TokenRouter.Gateway/TokenRouter.Gateway.csproj -c Release -nologo -v q
dotnet build bench/TokenRouter.Replay/TokenRouter.Replay.csproj -c Release -nologo -v q
GATEWAY_DIR=TokenRouter.Gateway/bin/Release/net10.0
REPLAY=(dotnet bench/TokenRouter.Replay/bin/Release/net10.0/TokenRouter.Replay.dll)

GW_PID=""
stop_gateway() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  GW_PID=""
}
trap stop_gateway EXIT

# start_gateway NAME [VAR=value ...]: the built gateway from its output directory (its appsettings.json applies),
# listening on loopback only, with the given switches. Each switch is set under its configuration key
# (Gateway__X) as well as its seed alias: the alias alone does not override appsettings.json.
start_gateway() {
  local name=$1
  shift
  (cd "$GATEWAY_DIR" && exec env "$@" \
      ASPNETCORE_URLS="$BASE" ASPNETCORE_ENVIRONMENT=Production TOKENROUTER_API_KEYS="$KEY" Simulator__ApiKey="$SIM_KEY" \
      Logging__LogLevel__Default=Warning \
      dotnet TokenRouter.Gateway.dll) >"$LOGS/$name.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null --max-time 2 -f "$BASE/health"; then return 0; fi
    if ! kill -0 "$GW_PID" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "The gateway ($name) did not become healthy; its log:" >&2
  cat "$LOGS/$name.log" >&2
  exit 1
}

FAILED=0
replay() {
  timeout 600 "${REPLAY[@]}" run --gateway "$BASE" --key "$KEY" --sim-key "$SIM_KEY" --sessions "$SESSIONS" --concurrency "$CONCURRENCY" \
    --vendors "$VENDORS" --results "$RESULTS" "$@" || FAILED=1
}

rm -f "$RESULTS"
started=$(date +%s)

echo "== DIRECT and BEST (clients straight to the simulator's /sim routes)"
start_gateway direct
replay --mode direct --label direct
replay --mode best --label best
stop_gateway

run_gateway_mode() {
  local label=$1
  shift
  echo "== $label"
  start_gateway "$label" "$@"
  replay --mode gateway --label "$label"
  stop_gateway
}

on=(TOOL_SORT_ENABLED=true Gateway__ToolSortEnabled=true CANONICALIZE_ENABLED=true Gateway__CanonicalizeEnabled=true
    CACHE_INJECT_ENABLED=true Gateway__CacheInjectEnabled=true)
run_gateway_mode gateway "${on[@]}"
run_gateway_mode gateway-no-toolsort "${on[@]}" TOOL_SORT_ENABLED=false Gateway__ToolSortEnabled=false
run_gateway_mode gateway-no-canonicalize "${on[@]}" CANONICALIZE_ENABLED=false Gateway__CanonicalizeEnabled=false
run_gateway_mode gateway-no-cacheinject "${on[@]}" CACHE_INJECT_ENABLED=false Gateway__CacheInjectEnabled=false

echo "== report ($(( $(date +%s) - started )) s)"
"${REPLAY[@]}" report --results "$RESULTS" --markdown "$MARKDOWN"
if [ "$FAILED" -ne 0 ]; then
  echo "Some requests failed (see the report's Errors section); gateway logs kept in $LOGS" >&2
  exit 2
fi
rm -rf "$LOGS"
echo "Written: $MARKDOWN"
