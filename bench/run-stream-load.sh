#!/usr/bin/env bash
# Many concurrent streaming requests through one gateway (Release) against a slow fake provider: 20 chunks 100 ms apart
# after a 5 s time-to-first-token, so every stream is open at once. Reports errors, the gateway's peak working set and
# managed heap, the per-chunk delay the client saw (provider send → client receive, both on this machine's monotonic
# clock), and the gateway's CPU; then the same with dedup followers (identical requests). Appends rows to
# bench/results/stream-load.runs.tmp and prints them.
#
#   bench/run-stream-load.sh                                  # 10,000 distinct streams over HTTP/2, then 1,000 identical
#   STREAMS=2000 HTTP2=false IDENTICAL=200 bench/run-stream-load.sh
#
# File descriptors: the container's hard limit (`ulimit -Hn`) bounds each process. The gateway holds one socket per
# upstream stream (HTTP/1.1 to the provider) plus its clients' connections: 10,000 HTTP/1.1 clients would need
# 20,000+ descriptors in the gateway, so the default run multiplexes the clients over HTTP/2 (h2c, prior knowledge;
# Kestrel's 100 streams per connection ⇒ ~100 connections) and the gateway holds ~10,100 sockets.
set -euo pipefail
cd "$(dirname "$0")/.."

GW_PORT=${GW_PORT:-5320}
PROVIDER_PORT=${PROVIDER_PORT:-18090}
STREAMS=${STREAMS:-10000}
IDENTICAL=${IDENTICAL:-1000}
RAMP=${RAMP:-5}
LATENCY_MS=${LATENCY_MS:-5000}
HTTP2=${HTTP2:-true}
KEY=${KEY:-sk-tr-bench-streams-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
OUT=${OUT:-bench/results/stream-load.runs.tmp}
LOGS=$(mktemp -d /tmp/tokenrouter-stream-load.XXXXXX)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# As many descriptors as the hard limit allows (raising the hard limit needs CAP_SYS_RESOURCE).
ulimit -n "$(ulimit -Hn)"
echo "== open files limit: $(ulimit -n)"

echo "== build (Release)"
dotnet build TokenRouter.Gateway/TokenRouter.Gateway.csproj -c Release -nologo -v q
dotnet build bench/TokenRouter.StreamLoad/TokenRouter.StreamLoad.csproj -c Release -nologo -v q
LOAD=(dotnet bench/TokenRouter.StreamLoad/bin/Release/net10.0/TokenRouter.StreamLoad.dll)

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

"${LOAD[@]}" provider --port "$PROVIDER_PORT" --chunks 20 --interval-ms 100 --latency-ms "$LATENCY_MS" >"$LOGS/provider.log" 2>&1 &
PIDS+=($!)

# The gateway as shipped (pipeline, limits, dedup, metering, metrics) with the provider pool allowed one connection per stream.
# Kestrel serves cleartext HTTP/2 (prior knowledge) only on an Http2-only endpoint: a second listener for the load.
(cd TokenRouter.Gateway/bin/Release/net10.0 && exec env \
    Kestrel__Endpoints__h1__Url="http://127.0.0.1:$GW_PORT" Kestrel__Endpoints__h1__Protocols=Http1 \
    Kestrel__Endpoints__h2__Url="http://127.0.0.1:$((GW_PORT + 1))" Kestrel__Endpoints__h2__Protocols=Http2 \
    ASPNETCORE_ENVIRONMENT=Production \
    TOKENROUTER_API_KEYS="$KEY" OPENAI_BASE_URL="http://127.0.0.1:$PROVIDER_PORT/v1" OPENAI_API_KEY=x \
    PROXY_MAX_CONNS_PER_HOST=$((STREAMS + 1000)) Logging__LogLevel__Default=Warning \
    DEDUP_ENABLED=true Gateway__DedupEnabled=true RATE_LIMIT_ENABLED=true Limits__Enabled=true \
    ${GATEWAY_ENV:-} \
    dotnet TokenRouter.Gateway.dll) >"$LOGS/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 1 120); do
  if curl -s -o /dev/null --max-time 2 -f "http://127.0.0.1:$GW_PORT/health" && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PROVIDER_PORT/stats"; then break; fi
  kill -0 "$GW_PID" 2>/dev/null || { cat "$LOGS/gateway.log" >&2; exit 1; }
  sleep 0.5
done
echo "== gateway pid $GW_PID, logs in $LOGS"

FAILED=0
if [ "$HTTP2" = true ]; then ENDPOINT=http://127.0.0.1:$((GW_PORT + 1)); else ENDPOINT=http://127.0.0.1:$GW_PORT; fi
run() {
  timeout 900 "${LOAD[@]}" run --gateway "http://127.0.0.1:$GW_PORT" --endpoint "$ENDPOINT" --key "$KEY" --provider "http://127.0.0.1:$PROVIDER_PORT" \
    --gateway-pid "$GW_PID" --ramp-seconds "${RAMP}" --http2 "$HTTP2" --out "$OUT" "$@" || FAILED=1
}
echo "== warm-up (200 streams)"
timeout 300 "${LOAD[@]}" run --gateway "http://127.0.0.1:$GW_PORT" --endpoint "$ENDPOINT" --key "$KEY" --provider "http://127.0.0.1:$PROVIDER_PORT" \
  --gateway-pid "$GW_PID" --streams 200 --ramp-seconds 1 --http2 "$HTTP2" --label warm-up >/dev/null || true
if [ "${DIRECT:-true}" = true ]; then
  # The same load straight at the provider (HTTP/1.1, no gateway): the per-chunk delay the load generator and the
  # provider cause on their own, on this machine, right now. The gateway's added delay is the difference.
  echo "== $STREAMS distinct streams, no gateway (baseline)"
  timeout 900 "${LOAD[@]}" run --gateway "http://127.0.0.1:$GW_PORT" --endpoint "http://127.0.0.1:$PROVIDER_PORT" --key x \
    --provider "http://127.0.0.1:$PROVIDER_PORT" --gateway-pid 0 --streams "$STREAMS" --ramp-seconds "$RAMP" --http2 false \
    --out "$OUT" --label "$STREAMS direct (no gateway)" || FAILED=1
fi
echo "== $STREAMS distinct streams"
run --streams "$STREAMS" --label "$STREAMS distinct"
echo "== $IDENTICAL identical streams (dedup followers)"
# Ramped over 2 s, well inside the provider's time to first token: every follower joins before the first chunk,
# so its per-chunk delay is the relay's, not a replay of chunks sent before it arrived.
RAMP=2 run --streams "$IDENTICAL" --identical true --label "$IDENTICAL identical"
echo "== gateway log (warnings and errors)"
tail -n 20 "$LOGS/gateway.log"
exit $FAILED
