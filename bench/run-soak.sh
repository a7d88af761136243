#!/usr/bin/env bash
# Soak: mixed traffic for MINUTES (default 30) through two gateway replicas on one Redis, with Admin writing the usage
# ledger to PostgreSQL, all on loopback. Samples gateway memory and sockets, Redis memory, the usage stream and the
# ledger while it runs, then checks ledger = served, request id by request id. Writes bench/results/soak.md (or OUT).
#
#   bench/run-soak.sh                  # 30 minutes
#   MINUTES=3 OUT=/tmp/soak.md bench/run-soak.sh   # the CI version
#
# Needs redis-server and the PostgreSQL binaries (initdb, postgres), as the tests do. Exit 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${MINUTES:-30}
OUT=${OUT:-bench/results/soak.md}
WORKERS=${WORKERS:-12}
MAX_BODY=262144
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PORT_A=$(free_port); PORT_B=$(free_port); PORT_SIM=$(free_port); PORT_ADMIN=$(free_port); REDIS_PORT=$(free_port); PG_PORT=$(free_port)
KEY=sk-tr-soak-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
SIM_KEY=sk-sim-soak-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
ADMIN_KEY=sk-admin-soak-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/tokenrouter-soak.XXXXXX); chmod 755 "$WORK"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not found" >&2; exit 1; }

echo "== build (Release)"
for p in TokenRouter.Gateway/TokenRouter.Gateway.csproj TokenRouter.Admin/TokenRouter.Admin.csproj bench/TokenRouter.Soak/TokenRouter.Soak.csproj; do
  dotnet build "$p" -c Release -nologo -v q >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_LOGS:-0}" != 1 ]; then rm -rf "$WORK"; else echo "Logs kept in $WORK"; fi
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
wait_http() {
  for _ in $(seq 1 240); do
    curl -s -o /dev/null --max-time 2 -f "$1" && return 0
    sleep 0.5
  done
  echo "$1 did not answer; logs in $WORK" >&2; KEEP_LOGS=1; exit 1
}

echo "== Redis :$REDIS_PORT, PostgreSQL :$PG_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres; chown postgres "$WORK/pg"; }
as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$WORK/initdb.log"
as_pg "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -h 127.0.0.1 -k "$WORK/pg" -c fsync=off -c synchronous_commit=off >"$WORK/postgres.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null && break; sleep 0.2; done
PG="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=tokenrouter"

echo "== Admin :$PORT_ADMIN"
(cd TokenRouter.Admin/bin/Release/net10.0 && exec env ASPNETCORE_URLS="http://127.0.0.1:$PORT_ADMIN" ASPNETCORE_ENVIRONMENT=Production \
    ConnectionStrings__tokenrouter="$PG" ConnectionStrings__redis="127.0.0.1:$REDIS_PORT" ADMIN_API_KEY="$ADMIN_KEY" \
    Logging__LogLevel__Default=Warning dotnet TokenRouter.Admin.dll) >"$WORK/admin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT_ADMIN/health"

# The provider: the simulator in a process of its own, so that its prefix caches do not count as gateway memory.
(cd TokenRouter.Gateway/bin/Release/net10.0 && exec env ASPNETCORE_URLS="http://127.0.0.1:$PORT_SIM" ASPNETCORE_ENVIRONMENT=Production \
    TOKENROUTER_API_KEYS="$KEY" Simulator__ApiKey="$SIM_KEY" Simulator__LatencyMs=30 Simulator__StreamChunkDelayMs=3 \
    Logging__LogLevel__Default=Warning dotnet TokenRouter.Gateway.dll) >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT_SIM/health"

GW_PIDS=()
start_gateway() {
  (cd TokenRouter.Gateway/bin/Release/net10.0 && exec env ASPNETCORE_URLS="http://127.0.0.1:$2" ASPNETCORE_ENVIRONMENT=Production \
      TOKENROUTER_API_KEYS="$KEY" Simulator__Enabled=false Simulator__ApiKey="$SIM_KEY" Providers__SimulatorBaseUrl="http://127.0.0.1:$PORT_SIM/" \
      ConnectionStrings__redis="127.0.0.1:$REDIS_PORT" DEDUP_ENABLED=true Gateway__MaxRequestBodyBytes=$MAX_BODY \
      Logging__LogLevel__Default=Warning dotnet TokenRouter.Gateway.dll) >"$WORK/$1.log" 2>&1 &
  PIDS+=($!); GW_PIDS+=($!)
  wait_http "http://127.0.0.1:$2/health"
}
echo "== simulator :$PORT_SIM, gateways :$PORT_A, :$PORT_B"
start_gateway gateway-a "$PORT_A"
start_gateway gateway-b "$PORT_B"

echo "== load for $MINUTES min"
status=0
dotnet bench/TokenRouter.Soak/bin/Release/net10.0/TokenRouter.Soak.dll \
  --gateways "http://127.0.0.1:$PORT_A,http://127.0.0.1:$PORT_B" --pids "$(IFS=,; echo "${GW_PIDS[*]}")" --key "$KEY" \
  --redis "127.0.0.1:$REDIS_PORT,allowAdmin=true" --postgres "$PG" --minutes "$MINUTES" --workers "$WORKERS" --max-body-bytes "$MAX_BODY" \
  --out "$OUT.tmp" || status=$?
{
  echo "# Soak"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -sr)), with \`MINUTES=$MINUTES bench/run-soak.sh\`: two gateway"
  echo "replicas (Release) sharing one Redis, dedup across replicas on, the simulator as the provider in a third process (30 ms"
  echo "before its answer, 3 ms between streamed events), Admin consuming the usage stream into PostgreSQL. RSS and sockets come"
  echo "from /proc of each gateway process; the last row is taken after the load, once the ledger caught up."
  echo
  cat "$OUT.tmp"
} >"$OUT"
rm -f "$OUT.tmp"
[ $status -eq 0 ] || { KEEP_LOGS=1; echo "Soak failed; logs in $WORK" >&2; }
exit $status
