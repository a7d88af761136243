#!/usr/bin/env bash
# Dedup burst: many clients fire the same prompt at the same moment, burst after burst, against one gateway and against
# two gateway replicas sharing a Redis. Reports upstream calls saved (the built-in simulator's /sim/stats counts every
# upstream call) and the latency followers pay compared with the leader of their burst. Writes bench/results/dedup-burst.md.
#
#   bench/run-dedup-burst.sh                         # 50 clients x 20 bursts per scenario, 300 ms simulated provider latency
#   CLIENTS=100 BURSTS=10 LATENCY_MS=500 bench/run-dedup-burst.sh
#
# The simulator's latency is set per gateway (Simulator:LatencyMs; the gateway does not forward a client's
# x-sim-latency-ms header upstream) and StreamChunkDelayMs spaces the streamed events, so a burst's calls overlap.
# The two-replica scenarios need redis-server on PATH (or REDIS_SERVER=/path); without it they are skipped.
# Loopback only: the gateways listen on 127.0.0.1 and each calls its own built-in simulator.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT_A=${PORT_A:-5311}
PORT_B=${PORT_B:-5312}
REDIS_PORT=${REDIS_PORT:-6391}
CLIENTS=${CLIENTS:-50}
BURSTS=${BURSTS:-20}
LATENCY_MS=${LATENCY_MS:-300}
CHUNK_DELAY_MS=${CHUNK_DELAY_MS:-5}
KEY=${KEY:-sk-tr-bench-dedup-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
SIM_KEY=${SIM_KEY:-sk-sim-bench-dedup-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}  # the simulators' key (Simulator:ApiKey), same on every replica
RESULTS=bench/results/dedup-burst.runs.tmp
MARKDOWN=bench/results/dedup-burst.md
LOGS=$(mktemp -d /tmp/tokenrouter-dedup-burst.XXXXXX)
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

for port in "$PORT_A" "$PORT_B"; do
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; then
    echo "Something already answers on port $port; set PORT_A/PORT_B to free ports." >&2
    exit 1
  fi
done

echo "== build (Release)"
dotnet build TokenRouter.Gateway/TokenRouter.Gateway.csproj -c Release -nologo -v q
dotnet build bench/TokenRouter.DedupBurst/TokenRouter.DedupBurst.csproj -c Release -nologo -v q
GATEWAY_DIR=TokenRouter.Gateway/bin/Release/net10.0
BURST=(dotnet bench/TokenRouter.DedupBurst/bin/Release/net10.0/TokenRouter.DedupBurst.dll)

PIDS=()
REDIS_PID=""
stop_all() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  PIDS=()
}
cleanup() {
  stop_all
  if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# start_gateway NAME PORT [VAR=value ...]: the built gateway on loopback with the simulator's latency and the given settings.
start_gateway() {
  local name=$1 port=$2
  shift 2
  (cd "$GATEWAY_DIR" && exec env "$@" \
      ASPNETCORE_URLS="http://127.0.0.1:$port" ASPNETCORE_ENVIRONMENT=Production TOKENROUTER_API_KEYS="$KEY" Simulator__ApiKey="$SIM_KEY" \
      Simulator__LatencyMs="$LATENCY_MS" Simulator__StreamChunkDelayMs="$CHUNK_DELAY_MS" Logging__LogLevel__Default=Warning \
      dotnet TokenRouter.Gateway.dll) >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  local pid=$!
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null --max-time 2 -f "http://127.0.0.1:$port/health"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "The gateway ($name) did not become healthy; its log:" >&2
  cat "$LOGS/$name.log" >&2
  exit 1
}

FAILED=0
burst() {
  timeout 900 "${BURST[@]}" run --key "$KEY" --sim-key "$SIM_KEY" --clients "$CLIENTS" --bursts "$BURSTS" --latency-ms "$LATENCY_MS" \
    --results "$RESULTS" "$@" || FAILED=1
}

rm -f "$RESULTS"
A=http://127.0.0.1:$PORT_A
B=http://127.0.0.1:$PORT_B

echo "== one gateway, dedup off (baseline: one upstream call per request)"
start_gateway off "$PORT_A" DEDUP_ENABLED=false Gateway__DedupEnabled=false
burst --gateways "$A" --label "1 gateway, dedup off" --stream false
burst --gateways "$A" --label "1 gateway, dedup off" --stream true
stop_all

echo "== one gateway, dedup on"
start_gateway on "$PORT_A" DEDUP_ENABLED=true Gateway__DedupEnabled=true
burst --gateways "$A" --label "1 gateway" --stream false
burst --gateways "$A" --label "1 gateway" --stream true
stop_all

if [ -n "$REDIS_SERVER" ]; then
  echo "== two replicas sharing Redis, clients split between them"
  "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$LOGS/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then break; fi
    sleep 0.1
  done
  redis=(ConnectionStrings__redis="127.0.0.1:$REDIS_PORT" DEDUP_ENABLED=true Gateway__DedupEnabled=true)
  start_gateway replica-a "$PORT_A" "${redis[@]}"
  start_gateway replica-b "$PORT_B" "${redis[@]}"
  burst --gateways "$A,$B" --label "2 replicas + Redis" --stream false
  burst --gateways "$A,$B" --label "2 replicas + Redis" --stream true
  stop_all
else
  echo "== redis-server not found: two-replica scenarios skipped"
fi

"${BURST[@]}" report --results "$RESULTS" --markdown "$LOGS/table.md" >/dev/null
{
  echo "# Dedup burst"
  echo
  echo "$CLIENTS clients fire the same request at the same moment, $BURSTS bursts per row (a new prompt per burst), model"
  echo "\`sim-openai\` on the gateway's built-in simulator with ${LATENCY_MS} ms latency before it answers and ${CHUNK_DELAY_MS} ms"
  echo "between streamed events. Upstream calls are counted by the simulator (\`/sim/stats\`, summed over replicas)."
  echo "A *leader* is a response without \`x-tokenrouter-deduplicated: true\`; *added* is a follower's time minus its burst"
  echo "leader's (first byte, and end of response), from the burst's common start. Two-replica rows split the clients"
  echo "evenly between the replicas, so half of the followers relay the leader's response through Redis."
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -sr)); numbers vary with whatever else runs on the box."
  echo
  cat "$LOGS/table.md"
} >"$MARKDOWN"
cat "$MARKDOWN"
if [ "$FAILED" -ne 0 ]; then
  echo "Some requests failed; gateway logs kept in $LOGS" >&2
  exit 2
fi
rm -rf "$LOGS" "$RESULTS"
echo "Written: $MARKDOWN"
