#!/usr/bin/env bash
# End-to-end load benchmark of the gateway against a zero-latency fake provider, next to a plain nginx proxy_pass hop
# measured in the same run (DESIGN.md "Budgets"). Writes bench/results/load.md. See bench/load/README.md.
#
#   bench/load/run-load.sh                                  # 2 rounds, ~12 min on 2 cores
#   ROUNDS=1 SLICES=2 bench/load/run-load.sh                # a quicker look
#   bench/load/run-load.sh profile json|stream|dedup        # perf profile of the gateway under load -> results/load-profile-*.md
#   bench/load/run-load.sh compare json|stream|dedup baseline 'otel-off=OTEL_SDK_DISABLED=true' ...
#                                                           # A/B of environment-only variants -> results/load-compare-*.md
#                                                           # ('old=GATEWAY_DIR=/path/to/bin/Release/net10.0' runs another build)
#   bench/load/run-load.sh redis                            # Redis commands and CPU per request (scale-out)
#                                                           # -> results/load-redis.md
#   bench/load/run-load.sh calibrate                        # the leanest ASP.NET Core proxy (MinimalProxy) vs gateway vs hop
#                                                           # -> results/load-calibration.md
#
# Loopback only (127.0.0.1); every wrk run is bounded (-d); every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
LOAD=$ROOT/bench/load

ROUNDS=${ROUNDS:-2}               # each round: fresh gateways, warm-up, every measurement
SLICES=${SLICES:-3}               # each -c64 measurement = SLICES wrk runs of SLICE s, interleaved with the other targets
SLICE=${SLICE:-5}
C1_SLICE=${C1_SLICE:-3}           # seconds per -c1 slice
WARMUP=${WARMUP:-20}              # seconds of load on each fresh gateway before measuring (tiered JIT + PGO)
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
TIMING_N=${TIMING_N:-200}         # sequential requests per time-to-first-byte / first-chunk measurement
SLOW_N=${SLOW_N:-40}              # sequential requests against the trickling stream
DURATION=${DURATION:-15}          # seconds per wrk run in the profile and compare modes
C1_DURATION=${C1_DURATION:-6}
FAKE_PORT=${FAKE_PORT:-18081}
FAKE_SSE_PORT=${FAKE_SSE_PORT:-18082}
TRICKLE_PORT=${TRICKLE_PORT:-18083}  # the trickling stream (trickle_server.py)
HOP_PORT=${HOP_PORT:-18091}
HOP_SSE_PORT=${HOP_SSE_PORT:-18092}
GW_PORT=${GW_PORT:-18100}         # gateways on GW_PORT, +1, +2
# The box is shared with whoever else builds and tests on it. The benchmark's processes run at nice BENCH_NICE, and so
# does its scheduling autogroup (with autogroups, nice alone only ranks processes within one session): others' work
# then disturbs it less. Before each measurement the script waits up to QUIET_WAIT s for the rest of the box to use
# less than QUIET_BUSY % of the CPUs, and each record notes the CPU others used meanwhile. BENCH_NICE=0 turns this off.
BENCH_NICE=${BENCH_NICE:--10}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-10}
KEY=sk-tr-bench
RUNS=${RUNS_FILE:-$ROOT/bench/results/load.runs.tmp}
MARKDOWN=${MARKDOWN:-$ROOT/bench/results/load.md}
GATEWAY_DIR=$ROOT/TokenRouter.Gateway/bin/Release/net10.0
WORK=$(mktemp -d /tmp/tokenrouter-load.XXXXXX)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
HZ=$(getconf CLK_TCK)
NICE=(nice -n "$BENCH_NICE")
renice -n "$BENCH_NICE" -p $$ >/dev/null 2>&1 || true
if [ -w /proc/self/autogroup ]; then echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || true; fi

log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }

# ---- tools ------------------------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v pgrep >/dev/null || missing+=(procps)
if [ "${1:-}" = profile ] && ! command -v perf >/dev/null; then missing+=(linux-perf); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for port in $FAKE_PORT $FAKE_SSE_PORT $TRICKLE_PORT $HOP_PORT $HOP_SSE_PORT $GW_PORT $((GW_PORT + 1)) $((GW_PORT + 2)) $((GW_PORT + 3)) $((GW_PORT + 4)); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "Port $port is already in use on 127.0.0.1; set the *_PORT variables to free ports." >&2
    exit 1
  fi
done

# ---- processes: started here, stopped on exit -------------------------------------------------------------------
FAKE_PID="" HOP_PID="" PERF_PID="" TRICKLE_PID=""
declare -A GW_PID=()   # gateway name -> pid
extras=()
stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
stop_gateways() {
  local name
  for name in "${!GW_PID[@]}"; do stop_pid "${GW_PID[$name]}"; done
  GW_PID=()
}
cleanup() {
  stop_pid "$PERF_PID" INT
  stop_pid "${COUNTERS_PID:-}" INT
  stop_gateways
  stop_pid "$HOP_PID" QUIT
  stop_pid "$FAKE_PID" QUIT
  stop_pid "$TRICKLE_PID"
  PERF_PID="" HOP_PID="" FAKE_PID="" TRICKLE_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "Nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# ---- the zero-latency fake provider and the nginx hop -----------------------------------------------------------
# The canned bodies go into the config as `return 200 '...'` (nginx's static module answers POST with 405); they
# must therefore hold no single quote, backslash or dollar sign.
for f in fake-response.json fake-stream.sse; do
  if grep -q "['\\\$]" "$LOAD/$f"; then echo "$f must not contain ' \\ or \$" >&2; exit 1; fi
done
RESPONSE_BODY=$(cat "$LOAD/fake-response.json")
STREAM_BODY=$(cat "$LOAD/fake-stream.sse"; echo x)   # keep the trailing blank line
STREAM_BODY=${STREAM_BODY%x}

common_http='
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
  client_body_temp_path '"$WORK"'/tmp-body;
  proxy_temp_path '"$WORK"'/tmp-proxy;
  fastcgi_temp_path '"$WORK"'/tmp-fcgi;
  uwsgi_temp_path '"$WORK"'/tmp-uwsgi;
  scgi_temp_path '"$WORK"'/tmp-scgi;
'
cat >"$WORK/fake.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/fake.pid;
error_log $WORK/fake.error.log warn;
events { worker_connections 4096; }
http {
$common_http
  server {
    listen 127.0.0.1:$FAKE_PORT backlog=4096;
    location = /v1/chat/completions { default_type application/json; return 200 '$RESPONSE_BODY'; }
  }
  server {
    listen 127.0.0.1:$FAKE_SSE_PORT backlog=4096;
    # A zero-latency stream: the whole canned SSE body at once.
    location = /v1/chat/completions { default_type text/event-stream; return 200 '$STREAM_BODY'; }
  }
}
EOF
cat >"$WORK/hop.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/hop.pid;
error_log $WORK/hop.error.log warn;
events { worker_connections 4096; }
http {
$common_http
  upstream fake { server 127.0.0.1:$FAKE_PORT; keepalive 256; }
  upstream fake_sse { server 127.0.0.1:$FAKE_SSE_PORT; keepalive 256; }
  upstream trickle { server 127.0.0.1:$TRICKLE_PORT; keepalive 8; }
  server {
    listen 127.0.0.1:$HOP_PORT backlog=4096;
    location / { proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$HOP_SSE_PORT backlog=4096;
    location / {
      proxy_pass http://fake_sse; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }
    location /slow/ {
      proxy_pass http://trickle; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
mkdir -p "$WORK"/tmp-body "$WORK"/tmp-proxy "$WORK"/tmp-fcgi "$WORK"/tmp-uwsgi "$WORK"/tmp-scgi
nginx -t -q -p "$WORK" -c "$WORK/fake.conf"
nginx -t -q -p "$WORK" -c "$WORK/hop.conf"
"${NICE[@]}" nginx -p "$WORK" -c "$WORK/fake.conf" 2>>"$WORK/fake.error.log" &
FAKE_PID=$!
"${NICE[@]}" nginx -p "$WORK" -c "$WORK/hop.conf" 2>>"$WORK/hop.error.log" &
HOP_PID=$!
"${NICE[@]}" python3 "$LOAD/trickle_server.py" "$TRICKLE_PORT" "$LOAD/fake-stream.sse" 5 &
TRICKLE_PID=$!
wait_port $FAKE_PORT; wait_port $FAKE_SSE_PORT; wait_port $TRICKLE_PORT; wait_port $HOP_PORT; wait_port $HOP_SSE_PORT

# ---- the gateway ------------------------------------------------------------------------------------------------
log "build (Release)"
for attempt in 1 2 3 4 5; do
  if dotnet build "$ROOT/TokenRouter.Gateway/TokenRouter.Gateway.csproj" -c Release -nologo -v q >"$WORK/build.log" 2>&1; then break; fi
  if [ $attempt = 5 ]; then cat "$WORK/build.log" >&2; exit 1; fi
  log "build failed (someone may be mid-edit); retrying in 60 s"; sleep 60
done

# start_gateway NAME PORT UPSTREAM_BASE DEDUP: the built gateway from its output directory, with every pipeline
# switch and the limits on (set under their configuration keys and their seed aliases), Warning logging and no OTLP
# exporter; GATEWAY_ENV adds or overrides variables. DeepSeek points at the trickling stream (first-chunk check only).
start_gateway() {
  local name=$1 port=$2 base=$3 dedup=$4 dir=$GATEWAY_DIR kv
  # A variant may name another build of the gateway (GATEWAY_DIR=...), e.g. an older commit's, to compare commits.
  for kv in ${GATEWAY_ENV:-}; do case $kv in GATEWAY_DIR=*) dir=${kv#GATEWAY_DIR=} ;; esac; done
  # A Native AOT publish (dotnet publish -r linux-x64 -p:PublishAot=true) is an executable, not a dll.
  local run=(dotnet TokenRouter.Gateway.dll)
  if [ ! -f "$dir/TokenRouter.Gateway.dll" ] && [ -x "$dir/TokenRouter.Gateway" ]; then run=(./TokenRouter.Gateway); fi
  (cd "$dir" && exec env \
      ASPNETCORE_URLS="http://127.0.0.1:$port" ASPNETCORE_ENVIRONMENT=Production \
      TOKENROUTER_API_KEYS=$KEY OPENAI_BASE_URL="$base" OPENAI_API_KEY=x \
      DEEPSEEK_BASE_URL="http://127.0.0.1:$TRICKLE_PORT/slow" DEEPSEEK_API_KEY=x \
      Logging__LogLevel__Default=Warning \
      TOOL_SORT_ENABLED=true Gateway__ToolSortEnabled=true CANONICALIZE_ENABLED=true Gateway__CanonicalizeEnabled=true \
      CACHE_INJECT_ENABLED=true Gateway__CacheInjectEnabled=true RATE_LIMIT_ENABLED=true Limits__Enabled=true \
      DEDUP_ENABLED=$dedup Gateway__DedupEnabled=$dedup \
      ${GATEWAY_ENV:-} \
      "${NICE[@]}" "${run[@]}") >"$WORK/gateway-$name.log" 2>&1 &
  GW_PID[$name]=$!
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null --max-time 2 -f "http://127.0.0.1:$port/health"; then return 0; fi
    kill -0 "${GW_PID[$name]}" 2>/dev/null || break
    sleep 0.5
  done
  echo "The gateway ($name) did not become healthy; its log:" >&2
  cat "$WORK/gateway-$name.log" >&2
  exit 1
}

# ---- measuring --------------------------------------------------------------------------------------------------
# CPU ticks (utime+stime) of processes and their direct children (nginx master + workers).
cpu_ticks() {
  local total=0 pid p
  for pid in "$@"; do
    [ -n "$pid" ] || continue
    for p in $pid $(pgrep -P "$pid" 2>/dev/null); do
      if [ -r /proc/$p/stat ]; then
        total=$(( total + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12 + $13}') ))
      fi
    done
  done
  echo $total
}
all_gateways() { local n; for n in "${!GW_PID[@]}"; do echo "${GW_PID[$n]}"; done; }
box_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }   # busy ticks of all CPUs
us() { echo $(( $1 * 1000000 / HZ )); }

# Waits until the box, apart from this benchmark's own processes, is quiet (or QUIET_WAIT s passed); prints the
# busy % that others used in the last second.
quiet_gate() {
  local waited=0 a b ours0 ours1 busy
  while true; do
    a=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)); ours0=$(cpu_ticks $(all_gateways) "$HOP_PID" "$FAKE_PID")
    sleep 1
    b=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)); ours1=$(cpu_ticks $(all_gateways) "$HOP_PID" "$FAKE_PID")
    busy=$(( 100 * (b[0] - a[0] - (ours1 - ours0)) / ((b[0] - a[0]) + (b[1] - a[1]) + 1) ))
    if [ "$busy" -lt "$QUIET_BUSY" ] || [ "$waited" -ge "$QUIET_WAIT" ]; then
      echo "$busy"; return 0
    fi
    sleep 1; waited=$((waited + 2))
  done
}

on_measure_start() { :; }   # the profile mode starts perf here

# measure ROUND PHASE TARGET GATEWAY_NAME|- URL BODY UNIQUE THREADS CONNS SECONDS: one wrk run, with the CPU that the
# gateway under test, the other (idle) gateways, the nginx hop, the fake, wrk and the whole box used meanwhile.
measure() {
  local round=$1 phase=$2 target=$3 gw=$4 url=$5 body=$6 unique=$7 threads=$8 conns=$9 seconds=${10}
  local gpid="" others g0 o0 h0 f0 b0 g1 o1 h1 f1 b1 t0 t1 out result quiet wrk_us
  [ "$gw" != - ] && gpid=${GW_PID[$gw]}
  others=$(for n in "${!GW_PID[@]}"; do if [ "$n" != "$gw" ]; then echo "${GW_PID[$n]}"; fi; done)
  quiet=$(quiet_gate)
  on_measure_start
  t0=$(date +%s%N); g0=$(cpu_ticks "$gpid"); o0=$(cpu_ticks $others); h0=$(cpu_ticks "$HOP_PID"); f0=$(cpu_ticks "$FAKE_PID"); b0=$(box_ticks)
  out=$(BODY_FILE=$body API_KEY=$KEY UNIQUE=$unique timeout $((seconds + 30)) \
        "${NICE[@]}" wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency -s "$LOAD/chat.lua" "$url"; times)
  b1=$(box_ticks); g1=$(cpu_ticks "$gpid"); o1=$(cpu_ticks $others); h1=$(cpu_ticks "$HOP_PID"); f1=$(cpu_ticks "$FAKE_PID"); t1=$(date +%s%N)
  result=$(grep '^RESULT ' <<<"$out" | sed 's/^RESULT //')
  [ -n "$result" ] || { echo "wrk gave no result for $target: $out" >&2; exit 1; }
  # `times`: its second line is the CPU of the subshell's children, i.e. wrk's (user, system).
  wrk_us=$(tail -n1 <<<"$out" | awk '{t=0; for(i=1;i<=2;i++){split($i,a,/[ms]/); t+=a[1]*60+a[2]} printf "%d", t*1e6}')
  echo "kind=wrk round=$round phase=$phase target=$target threads=$threads conns=$conns seconds=$seconds $result" \
       "cpu_gw_us=$(us $((g1 - g0))) cpu_gw_idle_us=$(us $((o1 - o0))) cpu_hop_us=$(us $((h1 - h0))) cpu_fake_us=$(us $((f1 - f0)))" \
       "cpu_box_us=$(us $((b1 - b0))) cpu_wrk_us=$wrk_us window_us=$(( (t1 - t0) / 1000 )) quiet_before_pct=$quiet" >>"$RUNS"
  log "$(printf '%-28s %s' "$phase/$target c$conns" "$(awk '{for(i=1;i<=NF;i++){split($i,a,"=");v[a[1]]=a[2]}} END{printf "%6.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d", v["requests"]/v["duration_us"]*1e6, v["lat_p50"]/1000, v["lat_p99"]/1000, v["err_status"]+v["err_read"]+v["err_connect"]+v["err_timeout"]}' <<<"$result")  (others ${quiet}%)")"
}

warm() { # warm URL BODY UNIQUE [SECONDS]
  BODY_FILE=$2 API_KEY=$KEY UNIQUE=$3 timeout $((${4:-$WARMUP} + 30)) "${NICE[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${4:-$WARMUP}s" -s "$LOAD/chat.lua" "$1" >/dev/null
}

# Time to first byte as curl sees it: TIMING_N sequential requests on one keep-alive connection (+1 not counted).
curl_ttfb() { # curl_ttfb ROUND TARGET URL BODY
  local args=() i
  for i in $(seq 0 "$TIMING_N"); do args+=(-o /dev/null "$3"); done
  quiet_gate >/dev/null
  "${NICE[@]}" curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary @"$4" \
       -w '%{http_code} %{time_starttransfer} %{time_total}\n' "${args[@]}" >"$WORK/ttfb.txt"
  if awk '$1 != 200 {bad=1} END {exit !bad}' "$WORK/ttfb.txt"; then echo "curl TTFB: non-200 from $3" >&2; exit 1; fi
  echo "kind=curl round=$1 target=$2 $(tail -n +2 "$WORK/ttfb.txt" | sort -k2,2g | awk '{t[NR]=$2; s+=$2; tt+=$3} END {printf "n=%d ttfb_mean_ms=%.4f ttfb_p50_ms=%.4f total_mean_ms=%.4f", NR, s/NR*1000, t[int((NR+1)/2)]*1000, tt/NR*1000}')" >>"$RUNS"
}

stream_timing() { # stream_timing ROUND SPEED TARGET URL BODY N [SKIP]
  local json
  quiet_gate >/dev/null
  json=$("${NICE[@]}" python3 "$LOAD/stream_timing.py" "$4" "$5" "$KEY" "$6" "${7:-1}")
  echo "kind=stream round=$1 speed=$2 target=$3 json=$json" >>"$RUNS"
}

check() { # check URL BODY EXPECT
  local out
  out=$(curl -s --max-time 10 -w '\n%{http_code}' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary @"$2" "$1")
  if [ "$(tail -n1 <<<"$out")" != 200 ] || ! grep -qF "$3" <<<"$out"; then
    echo "Sanity check failed for $1:" >&2; echo "$out" | head -c 2000 >&2; exit 1
  fi
}

DIRECT=http://127.0.0.1:$FAKE_PORT/v1/chat/completions
DIRECT_SSE=http://127.0.0.1:$FAKE_SSE_PORT/v1/chat/completions
SLOW_SSE=http://127.0.0.1:$TRICKLE_PORT/slow/chat/completions
HOP=http://127.0.0.1:$HOP_PORT/v1/chat/completions
HOP_SSE=http://127.0.0.1:$HOP_SSE_PORT/v1/chat/completions
HOP_SLOW=http://127.0.0.1:$HOP_SSE_PORT/slow/chat/completions
GW=http://127.0.0.1:$GW_PORT/v1/chat/completions              # gateway "json": dedup off, upstream = the JSON fake
GW_DEDUP=http://127.0.0.1:$((GW_PORT + 1))/v1/chat/completions # gateway "dedup": dedup on, upstream = the JSON fake
GW_SSE=http://127.0.0.1:$((GW_PORT + 2))/v1/chat/completions   # gateway "stream": dedup off, upstream = the SSE fake
REQ=$LOAD/request.json
REQ_SSE=$LOAD/request-stream.json
REQ_SLOW=$WORK/request-slow.json
sed 's/"model":"gpt-4o"/"model":"deepseek-chat"/' "$REQ_SSE" >"$REQ_SLOW"

check "$DIRECT" "$REQ" '"chat.completion"'
check "$HOP" "$REQ" '"chat.completion"'
check "$HOP_SSE" "$REQ_SSE" 'data: [DONE]'
check "$HOP_SLOW" "$REQ_SSE" 'data: [DONE]'

# write_report FILE REPORT_ARGS...: renders the records with report.py into bench/results/FILE and shows it.
write_report() {
  local out=$ROOT/bench/results/$1
  shift
  python3 "$LOAD/report.py" "$@" >"$out"
  log "written: ${out#$ROOT/}"
  cat "$out" >&2
}

# variant settings for the profile and compare modes
mode_settings() { # mode_settings json|dedup|stream -> sets base body dedup unique expect hop
  case $1 in
    json) base=http://127.0.0.1:$FAKE_PORT/v1; body=$REQ; dedup=false; unique=0; expect='"chat.completion"'; hop=$HOP ;;
    dedup) base=http://127.0.0.1:$FAKE_PORT/v1; body=$REQ; dedup=true; unique=1; expect='"chat.completion"'; hop=$HOP ;;
    stream) base=http://127.0.0.1:$FAKE_SSE_PORT/v1; body=$REQ_SSE; dedup=false; unique=0; expect='data: [DONE]'; hop=$HOP_SSE ;;
    *) echo "unknown mode '$1' (json, dedup or stream)" >&2; exit 2 ;;
  esac
}

# ---- profile mode: `run-load.sh profile json|stream|dedup` -------------------------------------------------------
# The gateway with DOTNET_PerfMapEnabled=1 (and W^X off, so that perf finds the JIT'd code), warmed, then sampled by
# `perf record -g` at 999 Hz while wrk -c$CONNS loads it for DURATION s. Writes bench/results/load-profile-<what>.md.
if [ "${1:-}" = profile ]; then
  what=${2:-json}
  mode_settings "$what"
  RUNS=$WORK/profile.runs
  echo "kind=env cpus=$(nproc) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" >"$RUNS"
  GATEWAY_ENV="DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 ${GATEWAY_ENV:-}" start_gateway profile "$GW_PORT" "$base" "$dedup"
  check "$GW" "$body" "$expect"
  warm "$GW" "$body" "$unique"
  on_measure_start() {
    log "profiling the gateway (pid ${GW_PID[profile]}) for $DURATION s under wrk -c$CONNS"
    # PERF_RECORD_ARGS: other events, e.g. "-e sched:sched_switch -e sched:sched_wakeup -g" for who blocks and who wakes.
    perf record ${PERF_RECORD_ARGS:--F 999 -g} -p "${GW_PID[profile]}" -o "$WORK/perf.data" -- sleep "$DURATION" 2>"$WORK/perf-record.log" &
    PERF_PID=$!
    sleep 0.3
  }
  measure 0 "profile-$what" gateway profile "$GW" "$body" "$unique" "$THREADS" "$CONNS" "$DURATION"
  wait "$PERF_PID" || true
  PERF_PID=""
  # Syscalls, context switches and (with dotnet-counters, when installed) allocations per request: the gateway, then the
  # nginx hop for comparison, each under the same wrk load.
  STAT_EVENTS=raw_syscalls:sys_enter,context-switches,cpu-migrations
  for sc in sendto recvfrom sendmsg recvmsg write read writev readv epoll_wait epoll_pwait epoll_ctl futex sched_yield \
            mprotect madvise mmap munmap getrandom; do
    [ -d /sys/kernel/tracing/events/syscalls/sys_enter_$sc ] && STAT_EVENTS+=",syscalls:sys_enter_$sc"
  done
  stat_target="" COUNTERS_PID=""
  on_measure_start() {
    perf stat -x, -e "$STAT_EVENTS" -p "$stat_target" -o "$WORK/perf-stat-$stat_label.csv" -- sleep "$DURATION" 2>/dev/null &
    PERF_PID=$!
    if [ "$stat_label" = gateway ] && [ -n "$COUNTERS" ]; then
      "$COUNTERS" collect -p "$stat_target" --counters System.Runtime --format csv -o "$WORK/counters.csv" \
        --refresh-interval 1 --duration "00:00:$(printf %02d "$DURATION")" >/dev/null 2>&1 &
      COUNTERS_PID=$!
    fi
    sleep 0.3
  }
  COUNTERS=$(command -v dotnet-counters || ls "${DOTNET_TOOLS:-/tmp/dt}/dotnet-counters" 2>/dev/null || true)
  stat_label=gateway stat_target=${GW_PID[profile]}
  measure 0 "stat-$what" gateway profile "$GW" "$body" "$unique" "$THREADS" "$CONNS" "$DURATION"
  wait "$PERF_PID" || true
  [ -n "$COUNTERS_PID" ] && { wait "$COUNTERS_PID" || true; }
  stat_label=hop stat_target=$(echo "$HOP_PID" $(pgrep -P "$HOP_PID") | tr ' ' ,)
  measure 0 "stat-$what" hop - "$hop" "$body" "$unique" "$THREADS" "$CONNS" "$DURATION"
  wait "$PERF_PID" || true
  PERF_PID=""
  perf script -i "$WORK/perf.data" -F comm,tid,time,event,ip,sym,dso 2>/dev/null >"$WORK/perf.txt"
  out=$ROOT/bench/results/load-profile-$what.md
  python3 "$LOAD/perf_report.py" "$WORK/perf.txt" "$RUNS" "$what" "${GATEWAY_ENV:-}" "$WORK" >"$out"
  profiled=${GW_PID[profile]}
  stop_gateways
  rm -f "/tmp/perf-$profiled.map" "/tmp/perfinfo-$profiled.map"
  log "written: ${out#$ROOT/} (perf data in $WORK)"
  exit 0
fi

# ---- compare mode: `run-load.sh compare json|stream|dedup LABEL[=ENV=value ENV2=value] ...` ----------------------
# A/B of settings that need no code change (telemetry off, a pipeline switch off, GC or thread-pool knobs, ...). Each
# round starts one fresh gateway per variant (ports GW_PORT, +1, ...), warms each, then measures them slice by slice,
# interleaved with the nginx hop (SLICES × SLICE s at -c$CONNS, then SLICES × C1_SLICE s at -c1), so that the box's
# drift falls on all alike; COMPARE_ROUNDS rounds average out the run-to-run spread of a single process (JIT/PGO).
# Writes bench/results/load-compare-<what>.md.
if [ "${1:-}" = compare ]; then
  what=${2:-json}
  shift 2 || true
  [ $# -gt 0 ] || set -- baseline
  mode_settings "$what"
  RUNS=$WORK/compare.runs
  echo "kind=env cpus=$(nproc) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none) what=$what conns=$CONNS slices=$SLICES slice=$SLICE c1_slice=$C1_SLICE warmup=$WARMUP" >"$RUNS"
  labels=()
  for variant in "$@"; do
    label=${variant%%=*}; extra=""
    [ "$label" != "$variant" ] && extra=${variant#*=}
    labels+=("$label"); extras+=("$extra")
    echo "kind=variant label=$label env=${extra// /,}" >>"$RUNS"
  done
  for round in $(seq 1 "${COMPARE_ROUNDS:-2}"); do
    for i in "${!labels[@]}"; do
      if (exec 3<>/dev/tcp/127.0.0.1/$((GW_PORT + i))) 2>/dev/null; then echo "Port $((GW_PORT + i)) is in use" >&2; exit 1; fi
      GATEWAY_ENV="${extras[$i]} ${GATEWAY_ENV:-}" start_gateway "${labels[$i]}" "$((GW_PORT + i))" "$base" "$dedup"
      check "http://127.0.0.1:$((GW_PORT + i))/v1/chat/completions" "$body" "$expect"
    done
    for i in "${!labels[@]}"; do warm "http://127.0.0.1:$((GW_PORT + i))/v1/chat/completions" "$body" "$unique"; done
    for s in $(seq 1 "$SLICES"); do
      measure "$round" hop hop - "$hop" "$body" "$unique" "$THREADS" "$CONNS" "$SLICE"
      for i in "${!labels[@]}"; do
        measure "$round" "${labels[$i]}" gateway "${labels[$i]}" "http://127.0.0.1:$((GW_PORT + i))/v1/chat/completions" "$body" "$unique" "$THREADS" "$CONNS" "$SLICE"
      done
    done
    for s in $(seq 1 "$SLICES"); do
      for i in "${!labels[@]}"; do
        measure "$round" "${labels[$i]}" gateway "${labels[$i]}" "http://127.0.0.1:$((GW_PORT + i))/v1/chat/completions" "$body" "$unique" 1 1 "$C1_SLICE"
      done
    done
    stop_gateways
  done
  write_report load-compare-$what.md --compare "$RUNS"
  exit 0
fi

# ---- redis mode: `run-load.sh redis` -----------------------------------------------------------------------------
# What Redis does for each request, as scale-out sees it: the gateway on a local redis-server with a key as Admin issues
# it (quota, RPM and TPM limits, in a team with a budget) and dedup across replicas on, next to the same gateway in its
# embedded mode, interleaved. Per request: Redis commands by name (INFO commandstats), Redis CPU, the gateway's CPU.
# COMPARE_ROUNDS rounds. Writes bench/results/load-redis.md.
if [ "${1:-}" = redis ]; then
  command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
  REDIS_PORT=${REDIS_PORT:-18379}
  if (exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT) 2>/dev/null; then echo "Port $REDIS_PORT is in use" >&2; exit 1; fi
  "${NICE[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  trap 'stop_pid "$REDIS_PID"; cleanup' EXIT
  wait_port "$REDIS_PORT"
  rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
  # A key of Admin's shape (TokenRouter.Contracts.RedisContract): limits far above the load, so none refuses.
  KEY=sk-tr-redis-bench
  rcli HSET "tokenrouter:key:$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" id bench-key name bench quota_usd 1000000 enabled 1 \
    rpm_limit 1000000000 tpm_limit 1000000000000 team_id bench-team team_name bench team_budget_usd 1000000 >/dev/null
  RUNS=$WORK/redis.runs
  echo "kind=meta cpus=$(nproc) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none) conns=$CONNS slices=$SLICES slice=$SLICE redis=$(redis-server --version | awk '{print $3}')" >"$RUNS"
  REDIS_GW=http://127.0.0.1:$((GW_PORT + 1))/v1/chat/completions
  for round in $(seq 1 "${COMPARE_ROUNDS:-2}"); do
    GATEWAY_ENV="TOKENROUTER_API_KEYS=$KEY" start_gateway embedded "$GW_PORT" "http://127.0.0.1:$FAKE_PORT/v1" true
    GATEWAY_ENV="TOKENROUTER_API_KEYS=sk-tr-static-unused REDIS_URL=127.0.0.1:$REDIS_PORT ${REDIS_GATEWAY_ENV:-}" start_gateway redis "$((GW_PORT + 1))" "http://127.0.0.1:$FAKE_PORT/v1" "${REDIS_DEDUP:-true}"
    check "$GW" "$REQ" '"chat.completion"'; check "$REDIS_GW" "$REQ" '"chat.completion"'
    warm "$GW" "$REQ" 1; warm "$REDIS_GW" "$REQ" 1
    for s in $(seq 1 "$SLICES"); do
      measure "$round" json embedded embedded "$GW" "$REQ" 1 "$THREADS" "$CONNS" "$SLICE"
      rcli CONFIG RESETSTAT >/dev/null
      r0=$(cpu_ticks "$REDIS_PID")
      measure "$round" json redis redis "$REDIS_GW" "$REQ" 1 "$THREADS" "$CONNS" "$SLICE"
      r1=$(cpu_ticks "$REDIS_PID")
      echo "kind=redis round=$round cpu_redis_us=$(us $((r1 - r0))) $(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/cmd_\1=\2/p' | tr '\n' ' ')" >>"$RUNS"
    done
    stop_gateways
  done
  write_report load-redis.md --redis "$RUNS"
  exit 0
fi

# ---- calibrate mode: `run-load.sh calibrate` --------------------------------------------------------------------
# What the leanest ASP.NET Core path reaches in this harness: bench/load/MinimalProxy (Kestrel + JsonDocument parse and
# re-serialize + HttpMessageInvoker + a flush per read; no telemetry, no pipeline) next to the gateway and the nginx hop,
# interleaved slice by slice, COMPARE_ROUNDS rounds. Writes bench/results/load-calibration.md.
if [ "${1:-}" = calibrate ]; then
  MIN_DIR=$LOAD/MinimalProxy/bin/Release/net10.0
  dotnet build "$LOAD/MinimalProxy/MinimalProxy.csproj" -c Release -nologo -v q >"$WORK/build-minimal.log" 2>&1 \
    || { cat "$WORK/build-minimal.log" >&2; exit 1; }
  start_minimal() { # start_minimal NAME PORT UPSTREAM_URL
    if (exec 3<>/dev/tcp/127.0.0.1/$2) 2>/dev/null; then echo "Port $2 is in use" >&2; exit 1; fi
    (cd "$MIN_DIR" && exec env ASPNETCORE_URLS="http://127.0.0.1:$2" UPSTREAM="$3" "${NICE[@]}" dotnet MinimalProxy.dll) \
      >"$WORK/minimal-$1.log" 2>&1 &
    GW_PID[$1]=$!
    wait_port "$2"
  }
  MIN=http://127.0.0.1:$((GW_PORT + 3))/v1/chat/completions
  MIN_SSE=http://127.0.0.1:$((GW_PORT + 4))/v1/chat/completions
  RUNS=$WORK/calibrate.runs
  echo "kind=meta cpus=$(nproc) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none) conns=$CONNS slices=$SLICES slice=$SLICE warmup=$WARMUP" >"$RUNS"
  for round in $(seq 1 "${COMPARE_ROUNDS:-2}"); do
    start_gateway json "$GW_PORT" "http://127.0.0.1:$FAKE_PORT/v1" false
    start_gateway stream "$((GW_PORT + 2))" "http://127.0.0.1:$FAKE_SSE_PORT/v1" false
    start_minimal minimal "$((GW_PORT + 3))" "$DIRECT"
    start_minimal minimal-sse "$((GW_PORT + 4))" "$DIRECT_SSE"
    check "$MIN" "$REQ" '"chat.completion"'; check "$MIN_SSE" "$REQ_SSE" 'data: [DONE]'
    check "$GW" "$REQ" '"chat.completion"'; check "$GW_SSE" "$REQ_SSE" 'data: [DONE]'
    warm "$GW" "$REQ" 0; warm "$GW_SSE" "$REQ_SSE" 0; warm "$MIN" "$REQ" 0; warm "$MIN_SSE" "$REQ_SSE" 0
    for s in $(seq 1 "$SLICES"); do
      measure "$round" json direct - "$DIRECT" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" json hop - "$HOP" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" json minimal minimal "$MIN" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" json gateway json "$GW" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" stream direct - "$DIRECT_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" stream hop - "$HOP_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" stream minimal minimal-sse "$MIN_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
      measure "$round" stream gateway stream "$GW_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
    done
    stop_gateways
  done
  write_report load-calibration.md --calibrate "$RUNS"
  exit 0
fi

# ---- the benchmark ----------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$RUNS")"
PREV_RUNS=${RUNS%.tmp}.prev.tmp
if [ -s "$RUNS" ] && grep -q '^kind=meta finished=' "$RUNS"; then mv "$RUNS" "$PREV_RUNS"; fi
: >"$RUNS"
{
  echo "kind=meta started=$(date -u +%FT%TZ) bench_nice=$BENCH_NICE quiet_busy=$QUIET_BUSY rounds=$ROUNDS slices=$SLICES slice=$SLICE" \
       "c1_slice=$C1_SLICE warmup=$WARMUP threads=$THREADS conns=$CONNS timing_n=$TIMING_N slow_n=$SLOW_N" \
       "body_bytes=$(wc -c <"$REQ") stream_body_bytes=$(wc -c <"$REQ_SSE")" \
       "response_bytes=$(wc -c <"$LOAD/fake-response.json") stream_response_bytes=$(wc -c <"$LOAD/fake-stream.sse")"
  echo "kind=env cpus=$(nproc) kernel=$(uname -r) dotnet=$(dotnet --version) nginx=$(nginx -v 2>&1 | sed 's#.*/##')" \
       "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}') commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
       "dirty=$(git -C "$ROOT" status --porcelain -- TokenRouter.Gateway 2>/dev/null | wc -l)"
} >>"$RUNS"

started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  log "== round $round / $ROUNDS: three fresh gateways (dedup off / dedup on / streaming upstream), ${WARMUP} s warm-up each"
  start_gateway json "$GW_PORT" "http://127.0.0.1:$FAKE_PORT/v1" false
  start_gateway dedup "$((GW_PORT + 1))" "http://127.0.0.1:$FAKE_PORT/v1" true
  start_gateway stream "$((GW_PORT + 2))" "http://127.0.0.1:$FAKE_SSE_PORT/v1" false
  check "$GW" "$REQ" '"chat.completion"'
  check "$GW_DEDUP" "$REQ" '"chat.completion"'
  check "$GW_SSE" "$REQ_SSE" 'data: [DONE]'
  check "$GW_SSE" "$REQ_SLOW" 'data: [DONE]'
  warm "$GW" "$REQ" 0
  warm "$GW_DEDUP" "$REQ" 1
  warm "$GW_SSE" "$REQ_SSE" 0
  warm "$HOP" "$REQ" 0 3

  # Targets alternate slice by slice, so that whatever else the box does falls on all of them alike.
  log "non-streaming, -c$CONNS: $SLICES slices of $SLICE s per target"
  for s in $(seq 1 "$SLICES"); do
    measure "$round" json direct - "$DIRECT" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
    measure "$round" json hop - "$HOP" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
    measure "$round" json gateway json "$GW" "$REQ" 0 "$THREADS" "$CONNS" "$SLICE"
    measure "$round" json gateway-unique json "$GW" "$REQ" 1 "$THREADS" "$CONNS" "$SLICE"
    measure "$round" json gateway-dedup-unique dedup "$GW_DEDUP" "$REQ" 1 "$THREADS" "$CONNS" "$SLICE"
  done
  log "streaming, -c$CONNS"
  for s in $(seq 1 "$SLICES"); do
    measure "$round" stream direct - "$DIRECT_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
    measure "$round" stream hop - "$HOP_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
    measure "$round" stream gateway stream "$GW_SSE" "$REQ_SSE" 0 "$THREADS" "$CONNS" "$SLICE"
  done
  log "single connection (-t1 -c1)"
  for s in $(seq 1 "$SLICES"); do
    measure "$round" json direct - "$DIRECT" "$REQ" 0 1 1 "$C1_SLICE"
    measure "$round" json hop - "$HOP" "$REQ" 0 1 1 "$C1_SLICE"
    measure "$round" json gateway json "$GW" "$REQ" 0 1 1 "$C1_SLICE"
    measure "$round" json gateway-dedup-unique dedup "$GW_DEDUP" "$REQ" 1 1 1 "$C1_SLICE"
    measure "$round" stream direct - "$DIRECT_SSE" "$REQ_SSE" 0 1 1 "$C1_SLICE"
    measure "$round" stream hop - "$HOP_SSE" "$REQ_SSE" 0 1 1 "$C1_SLICE"
    measure "$round" stream gateway stream "$GW_SSE" "$REQ_SSE" 0 1 1 "$C1_SLICE"
  done
  log "streams: time to first byte / first chunk"
  for t in direct:$DIRECT_SSE hop:$HOP_SSE gateway:$GW_SSE; do curl_ttfb "$round" "${t%%:*}" "${t#*:}" "$REQ_SSE"; done
  for t in direct:$DIRECT_SSE hop:$HOP_SSE gateway:$GW_SSE; do stream_timing "$round" fast "${t%%:*}" "${t#*:}" "$REQ_SSE" "$TIMING_N"; done
  stream_timing "$round" slow direct "$SLOW_SSE" "$REQ_SSE" "$SLOW_N" 20
  stream_timing "$round" slow hop "$HOP_SLOW" "$REQ_SSE" "$SLOW_N" 20
  stream_timing "$round" slow gateway "$GW_SSE" "$REQ_SLOW" "$SLOW_N" 20   # model deepseek-chat: DEEPSEEK_BASE_URL is the trickle
  stop_gateways
done

# Gateway log lines at warning level or above, other than wrk's connections cut at the end of each run.
cat "$WORK"/gateway-*.log 2>/dev/null \
  | awk '/^(warn|fail|crit):/ {h=$0; m1=""; m2=""; getline m1; getline m2; gsub(/^ +/, "", m1); gsub(/^ +/, "", m2); print h " | " m1 " | " m2}' \
  | grep -v 'Unexpected end of request content' | cut -c1-300 | sort | uniq -c | sort -rn >"$WORK/gateway-warnings.txt" || true
echo "kind=meta finished=$(date -u +%FT%TZ) elapsed_s=$(( $(date +%s) - started )) gateway_log_warnings=$(awk '{s+=$1} END {print s+0}' "$WORK/gateway-warnings.txt")" >>"$RUNS"
prev=(); [ -s "$PREV_RUNS" ] && prev=("$PREV_RUNS")
python3 "$LOAD/report.py" "$RUNS" "${prev[@]}" >"$MARKDOWN"
log "written: ${MARKDOWN#$ROOT/} (raw records: ${RUNS#$ROOT/}; logs in $WORK)"
if [ -s "$WORK/gateway-warnings.txt" ]; then log "gateway log warnings/errors:"; head -20 "$WORK/gateway-warnings.txt" >&2; fi
