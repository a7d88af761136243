#!/usr/bin/env python3
"""Renders the records of bench/load/run-load.sh as markdown on stdout.

    report.py RUNS_FILE              the benchmark (bench/results/load.md)
    report.py --compare RUNS_FILE    the compare mode (bench/results/load-compare-*.md)
    report.py --redis RUNS_FILE      the redis mode (bench/results/load-redis.md)

A measurement made of several wrk slices is summed: requests, durations and CPU add up; latencies are the
request-weighted mean of the slices' mean, p50 and p99 (wrk reports no histogram to merge).
"""
import json
import sys

BUDGET_RATIO = 0.7
BUDGET_CPU_US = 90
BUDGET_ADDED_MS = 0.3
SUMMED = ("requests", "duration_us", "err_connect", "err_read", "err_write", "err_status", "err_timeout", "cpu_gw_us",
          "cpu_gw_idle_us", "cpu_hop_us", "cpu_fake_us", "cpu_box_us", "cpu_wrk_us", "window_us")
WEIGHTED = ("lat_mean", "lat_p50", "lat_p90", "lat_p99")


def parse(path):
    records = []
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        rec = {}
        if " json=" in line:
            line, js = line.split(" json=", 1)
            rec["json"] = json.loads(js)
        for part in line.split(" "):
            if "=" in part:
                k, v = part.split("=", 1)
                rec[k] = v
        records.append(rec)
    return records


class Run:
    """One measurement: the sum of its slices."""

    def __init__(self, slices):
        self.slices = slices
        self.target = slices[0]["target"]
        self.v = {k: sum(float(s.get(k, 0)) for s in slices) for k in SUMMED}
        n = self.v["requests"] or 1
        for k in WEIGHTED:
            self.v[k] = sum(float(s[k]) * float(s["requests"]) for s in slices) / n
        self.v["lat_max"] = max(float(s["lat_max"]) for s in slices)
        self.v["quiet_before_pct"] = max(float(s.get("quiet_before_pct", 0)) for s in slices)

    def __getitem__(self, k):
        return self.v[k]

    @property
    def rps(self):
        return self["requests"] / self["duration_us"] * 1e6

    @property
    def own_cpu(self):
        key = "cpu_fake_us" if self.target == "direct" else "cpu_hop_us" if self.target == "hop" else "cpu_gw_us"
        return self[key] / self["requests"]

    @property
    def box_cpu(self):
        return self["cpu_box_us"] / self["requests"]

    @property
    def wrk_cpu(self):
        return self["cpu_wrk_us"] / self["requests"]

    @property
    def errors(self):
        return int(sum(self[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")))

    def foreign(self, cpus):
        ours = sum(self[k] for k in ("cpu_gw_us", "cpu_gw_idle_us", "cpu_hop_us", "cpu_fake_us", "cpu_wrk_us"))
        return max(0.0, (self["cpu_box_us"] - ours) / (self["window_us"] * cpus))


def index(recs):
    groups = {}
    for r in recs:
        if r.get("kind") == "wrk":
            groups.setdefault((r["round"], r["phase"], r["target"], r["conns"]), []).append(r)
    return {k: Run(v) for k, v in groups.items()}


def compare(path):
    recs = parse(path)
    env = recs[0]
    runs = index(recs)
    labels, envs = [], {}
    for r in recs:
        if r["kind"] == "variant" and r["label"] not in envs:
            labels.append(r["label"])
            envs[r["label"]] = r.get("env", "").replace(",", " ")
    conns = env["conns"]
    rounds = sorted({k[0] for k in runs}, key=int)
    cpus = int(env.get("cpus", 2))
    print(f"# Gateway A/B ({env['what']}, commit {env['commit']})\n")
    print(f"`bench/load/run-load.sh compare {env['what']} ...`: each round starts a fresh gateway per variant, warms each "
          f"({env.get('warmup', '?')} s), then measures them and the nginx hop slice by slice, interleaved: {env.get('slices', '?')} × "
          f"{env.get('slice', '?')} s at -c{conns}, then {env.get('slices', '?')} × {env.get('c1_slice', '?')} s at -c1. Same settings "
          "as the load benchmark plus the variant's environment. CPU µs/req = the gateway process's utime+stime ÷ requests.\n")
    print("| round | variant | extra environment | req/s c" + conns + " | × hop | gateway CPU µs/req | p50 ms | p99 ms | c1 mean ms | c1 p50 ms | c1 CPU µs/req | others' CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for rnd in rounds:
        hop = runs.get((rnd, "hop", "hop", conns))
        if hop:
            print(f"| {rnd} | nginx hop | – | {hop.rps:,.0f} | 1.00 | {hop.own_cpu:.1f} (nginx) | {hop['lat_p50'] / 1000:.2f} | "
                  f"{hop['lat_p99'] / 1000:.2f} | | | | {hop.foreign(cpus):.0%} |")
        for label in labels:
            c, c1 = runs.get((rnd, label, "gateway", conns)), runs.get((rnd, label, "gateway", "1"))
            if not c or not c1:
                continue
            summary.setdefault(label, []).append((c.rps / hop.rps if hop else 0, c.own_cpu, c1["lat_mean"] / 1000))
            print(f"| {rnd} | {label} | `{envs[label] or '–'}` | {c.rps:,.0f} | {c.rps / hop.rps:.2f} | {c.own_cpu:.1f} | "
                  f"{c['lat_p50'] / 1000:.2f} | {c['lat_p99'] / 1000:.2f} | {c1['lat_mean'] / 1000:.3f} | {c1['lat_p50'] / 1000:.3f} | "
                  f"{c1.own_cpu:.1f} | {c.foreign(cpus):.0%} |")
    print("\nMean over rounds:\n")
    print("| variant | × hop | gateway CPU µs/req | c1 mean ms |")
    print("|---|---|---|---|")
    for label in labels:
        xs = summary.get(label, [])
        if xs:
            print(f"| {label} | {sum(x[0] for x in xs) / len(xs):.2f} | {sum(x[1] for x in xs) / len(xs):.1f} | "
                  f"{sum(x[2] for x in xs) / len(xs):.3f} |")


def calibrate(path):
    recs = parse(path)
    meta = recs[0]
    runs = index(recs)
    conns = meta["conns"]
    cpus = int(meta.get("cpus", 2))
    rounds = sorted({k[0] for k in runs}, key=int)
    print(f"# Calibration: the leanest ASP.NET Core proxy vs the gateway vs nginx (commit {meta['commit']})\n")
    print("`bench/load/run-load.sh calibrate`: `bench/load/MinimalProxy` is Kestrel + `JsonDocument` parse and re-serialize + "
          "`HttpMessageInvoker` (SocketsHttpHandler) + the response copied with a flush per read — no telemetry, no pipeline, "
          "no auth, Server GC (PLATFORM-NOTES' calibration path). Each round starts fresh processes, warms each "
          f"({meta.get('warmup', '?')} s), then measures all targets slice by slice, interleaved ({meta.get('slices', '?')} × "
          f"{meta.get('slice', '?')} s at -c{conns}).\n")
    print("| round | mode | target | req/s | × nginx hop | CPU µs/req own | CPU µs/req box | wrk µs/req | p50 ms | p99 ms | others |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    means = {}
    for rnd in rounds:
        for phase in ("json", "stream"):
            hop = runs.get((rnd, phase, "hop", conns))
            for target, name in (("direct", "direct (fake)"), ("hop", "nginx hop"), ("minimal", "MinimalProxy"), ("gateway", "gateway")):
                r = runs.get((rnd, phase, target, conns))
                if not r or not hop:
                    continue
                means.setdefault((phase, name), []).append((r.rps / hop.rps, r.own_cpu, r.box_cpu))
                print(f"| {rnd} | {phase} | {name} | {r.rps:,.0f} | {r.rps / hop.rps:.2f} | {r.own_cpu:.1f} | {r.box_cpu:.1f} | "
                      f"{r.wrk_cpu:.1f} | {r['lat_p50'] / 1000:.2f} | {r['lat_p99'] / 1000:.2f} | {r.foreign(cpus):.0%} |")
    print("\nMean over rounds:\n")
    print("| mode | target | × nginx hop | CPU µs/req own | CPU µs/req box |")
    print("|---|---|---|---|---|")
    for (phase, name), xs in means.items():
        print(f"| {phase} | {name} | {sum(x[0] for x in xs) / len(xs):.2f} | {sum(x[1] for x in xs) / len(xs):.1f} | "
              f"{sum(x[2] for x in xs) / len(xs):.1f} |")


def redis(path):
    recs = parse(path)
    meta = recs[0]
    conns = meta["conns"]
    cpus = int(meta.get("cpus", 2))
    # Each redis-mode slice: the wrk record of the gateway on Redis, then Redis's counters for exactly that slice.
    slices, last = [], None
    for r in recs:
        if r.get("kind") == "wrk" and r["target"] == "redis":
            last = r
        elif r.get("kind") == "redis" and last is not None:
            slices.append((last, r))
            last = None
    runs = index(recs)
    rounds = sorted({k[0] for k in runs}, key=int)
    print(f"# Redis per request (commit {meta['commit']}, redis {meta.get('redis', '?')})\n")
    print("`bench/load/run-load.sh redis`: the gateway on a local redis-server with a key as Admin issues it (a quota, RPM and "
          "TPM limits, in a team with a budget) and dedup across replicas on, every request distinct, next to the same gateway "
          f"in its embedded mode (no Redis), interleaved: {meta.get('slices', '?')} × {meta.get('slice', '?')} s at -c{conns} per "
          "round. Redis's counters are reset before each slice of the gateway on Redis and read after it "
          "(`INFO commandstats`; CPU = the redis-server process's utime+stime).\n")
    print(f"| round | gateway | req/s c{conns} | gateway CPU µs/req | p50 ms | p99 ms | others' CPU |")
    print("|---|---|---|---|---|---|---|")
    means = {}
    for rnd in rounds:
        for target in ("embedded", "redis"):
            r = runs.get((rnd, "json", target, conns))
            if not r:
                continue
            means.setdefault(target, []).append((r.rps, r.own_cpu))
            print(f"| {rnd} | {target} | {r.rps:,.0f} | {r.own_cpu:.1f} | {r['lat_p50'] / 1000:.2f} | {r['lat_p99'] / 1000:.2f} | "
                  f"{r.foreign(cpus):.0%} |")
    requests = sum(float(w["requests"]) for w, _ in slices) or 1
    redis_cpu = sum(float(x["cpu_redis_us"]) for _, x in slices)
    commands = {}
    for _, x in slices:
        for k, v in x.items():
            if k.startswith("cmd_"):
                commands[k[4:]] = commands.get(k[4:], 0) + int(v)
    total = sum(commands.values())
    print("\nMean over rounds:\n")
    print("| gateway | req/s | gateway CPU µs/req |")
    print("|---|---|---|")
    for target, xs in means.items():
        print(f"| {target} | {sum(x[0] for x in xs) / len(xs):,.0f} | {sum(x[1] for x in xs) / len(xs):.1f} |")
    print(f"\nPer request on Redis ({requests:,.0f} requests): **{total / requests:.2f} Redis commands**, "
          f"**{redis_cpu / requests:.1f} µs of Redis CPU** (one Redis core: ≈ {1e6 / (redis_cpu / requests):,.0f} requests/s "
          "before Redis is the limit).\n")
    print("| command | calls per request |")
    print("|---|---|")
    for name, calls in sorted(commands.items(), key=lambda kv: -kv[1]):
        print(f"| `{name}` | {calls / requests:.3f} |")


def main():
    if sys.argv[1] == "--redis":
        redis(sys.argv[2])
        return
    if sys.argv[1] == "--compare":
        compare(sys.argv[2])
        return
    if sys.argv[1] == "--calibrate":
        calibrate(sys.argv[2])
        return
    out = render(parse(sys.argv[1]), True)
    for path in sys.argv[2:]:
        try:
            out += render(parse(path), False)
        except (OSError, KeyError, ValueError, ZeroDivisionError) as e:
            out.append(f"(earlier run {path} not shown: {e})")
    print("\n".join(out))


def render(recs, full):
    """The whole report (full) or, for an earlier run, its budget table."""
    meta = {}
    for r in recs:
        if r["kind"] in ("meta", "env"):
            meta.update({k: v for k, v in r.items() if k != "kind"})
    runs = index(recs)
    rounds = sorted({k[0] for k in runs}, key=int)
    conns = meta.get("conns", "64")
    cpus = int(meta.get("cpus", 2))

    def get(rnd, phase, target, c):
        return runs.get((rnd, phase, target, str(c)))

    streams = [r for r in recs if r["kind"] == "stream"]
    curls = [r for r in recs if r["kind"] == "curl"]

    def stream_rec(rnd, speed, target):
        return next((r["json"] for r in streams if r["round"] == rnd and r["speed"] == speed and r["target"] == target), None)

    out = []
    w = out.append
    slices, slice_s, c1_slice = meta.get("slices", "?"), meta.get("slice", "?"), meta.get("c1_slice", "?")
    if not full:
        w(f"## Earlier run: budgets ({meta.get('started', '?')}, commit {meta.get('commit', '?')} plus {meta.get('dirty', '?')} "
          "uncommitted files under TokenRouter.Gateway/)")
        w("")
        w("The previous invocation of the script, kept for comparison (its records: `bench/results/load.runs.prev.tmp`).")
        w("")
    else:
        header(w, meta, cpus, conns, slices, slice_s, c1_slice)
    budgets(w, meta, rounds, get, stream_rec, conns)
    if not full:
        return out
    return details(w, out, meta, rounds, get, stream_rec, curls, conns, cpus)


def header(w, meta, cpus, conns, slices, slice_s, c1_slice):
    w("# Gateway load benchmark (end to end)")
    w("")
    w(f"`bench/load/run-load.sh` ({meta.get('started', '?')} → {meta.get('finished', '?')}, {meta.get('elapsed_s', '?')} s); "
      f"{cpus} CPUs shared by wrk, the fake provider, the nginx hop and the gateway; kernel {meta.get('kernel', '?')}, "
      f".NET SDK {meta.get('dotnet', '?')}, nginx {meta.get('nginx', '?')}, wrk {meta.get('wrk', '?')}; commit {meta.get('commit', '?')} "
      f"plus {meta.get('dirty', '?')} uncommitted files under TokenRouter.Gateway/.")
    w("")
    w(f"- **Request**: OpenAI chat completion, model gpt-4o, 6 messages (system, user, assistant tool call, tool result, "
      f"assistant, user), 3 function tools, temperature, max_tokens — {meta.get('body_bytes', '?')} bytes "
      f"({meta.get('stream_body_bytes', '?')} with `\"stream\":true`); wrk -t{meta.get('threads', '?')} with a Lua script.")
    w(f"- **Fake provider** (zero latency): nginx `return 200` of a canned chat completion ({meta.get('response_bytes', '?')} bytes, "
      f"usage with cached tokens) or of a canned SSE stream ({meta.get('stream_response_bytes', '?')} bytes: 11 `data:` events, the "
      "last with usage and no choices, then `data: [DONE]`), 2 workers. **nginx hop**: `proxy_pass` to it, upstream keepalive, "
      "`proxy_buffering off` for streams, 2 workers.")
    w(f"- **Gateway**: Release build run as `dotnet TokenRouter.Gateway.dll`, Production, all pipeline switches and limits on, "
      f"Warning logging, no OTLP exporter (OpenTelemetry instrumentation as shipped). Each round starts three: dedup off "
      f"(upstream = the JSON fake), dedup on, and dedup off with the SSE fake as upstream; each gets {meta.get('warmup', '?')} s of "
      "load before anything is measured.")
    w(f"- **Method**: each -c{conns} figure is {slices} wrk runs of {slice_s} s, each -c1 figure {slices} of {c1_slice} s; targets "
      "alternate run by run (direct, hop, gateway, …) so that whatever else the box does falls on all of them alike. "
      "Compare within a round.")
    w(f"- **CPU µs/req** = Δ(utime+stime) ÷ requests of the process in the path: the fake's nginx for *direct*, the hop's nginx "
      "(master + workers) for *hop*, the gateway's dotnet process for the gateway. *box* = all CPUs of the machine (wrk and the "
      "fake included). *Others* = the share of the box that processes outside the benchmark used meanwhile (the box is "
      f"shared with other people's builds and tests; ⚠ above 15 %). Benchmark processes run at nice {meta.get('bench_nice', '?')} "
      "(process and autogroup).")
    w("")


def budgets(w, meta, rounds, get, stream_rec, conns):
    # ---- budgets -----------------------------------------------------------------------------------------------
    w("## Budgets (DESIGN.md)")
    w("")
    w("| budget | target | " + " | ".join(f"round {r}" for r in rounds) + " | verdict |")
    w("|---|---|" + "---|" * len(rounds) + "---|")

    def budget_row(name, target, values, ok):
        cells, passes = [], []
        for v in values:
            if v is None:
                cells.append("–")
                continue
            cells.append(v[0])
            passes.append(ok(v[1]))
        verdict = "–" if not passes else ("**pass**" if all(passes) else "**FAIL**" if not any(passes) else "mixed")
        w(f"| {name} | {target} | " + " | ".join(cells) + f" | {verdict} |")

    for phase, label in (("json", "non-streaming"), ("stream", "streaming")):
        vals = []
        for rnd in rounds:
            g, h = get(rnd, phase, "gateway", conns), get(rnd, phase, "hop", conns)
            vals.append((f"{g.rps / h.rps:.2f}× ({g.rps:,.0f} vs {h.rps:,.0f} req/s)", g.rps / h.rps) if g and h else None)
        budget_row(f"throughput ÷ nginx hop, {label}", f"≥ {BUDGET_RATIO}×", vals, lambda x: x >= BUDGET_RATIO)
    for phase, label in (("json", "non-streaming"), ("stream", "streaming")):
        vals = []
        for rnd in rounds:
            g = get(rnd, phase, "gateway", conns)
            vals.append((f"{g.own_cpu:.0f} µs", g.own_cpu) if g else None)
        budget_row(f"gateway CPU per request, {label} (c{conns})", f"≤ {BUDGET_CPU_US} µs", vals, lambda x: x <= BUDGET_CPU_US)
    for phase, label in (("json", "non-streaming"), ("stream", "streaming")):
        vals = []
        for rnd in rounds:
            g, d = get(rnd, phase, "gateway", 1), get(rnd, phase, "direct", 1)
            if g and d:
                added = (g["lat_mean"] - d["lat_mean"]) / 1000
                added50 = (g["lat_p50"] - d["lat_p50"]) / 1000
                vals.append((f"{added:.3f} ms (p50 {added50:.3f})", added))
            else:
                vals.append(None)
        budget_row(f"added latency at c1 (mean) vs direct, {label}", f"< {BUDGET_ADDED_MS} ms", vals, lambda x: x < BUDGET_ADDED_MS)
    vals = []
    for rnd in rounds:
        g, d = stream_rec(rnd, "slow", "gateway"), stream_rec(rnd, "slow", "direct")
        if g and d:
            held = (g["ttfc"]["mean"] - g["ttfb"]["mean"]) - (d["ttfc"]["mean"] - d["ttfb"]["mean"])
            added = g["ttfc"]["mean"] - d["ttfc"]["mean"]
            vals.append((f"+{added:.3f} ms to the first chunk, of which {held:+.3f} ms after the headers", held))
        else:
            vals.append(None)
    budget_row("zero added delay to a stream's first chunk (trickling stream)", "first chunk relayed with the headers (< +0.1 ms)",
               vals, lambda x: x < 0.1)
    w("")
    w("The first-chunk row: the gateway's time to the first `data:` event minus direct's; \"after the headers\" = "
      "(first chunk − first byte) through the gateway minus the same gap direct, i.e. whether the gateway holds the first "
      "event back beyond its ordinary per-request latency (0 = relayed at once).")
    w("")


def details(w, out, meta, rounds, get, stream_rec, curls, conns, cpus):
    # ---- throughput --------------------------------------------------------------------------------------------
    labels = {
        ("json", "direct"): ("non-streaming", "direct (fake provider)"),
        ("json", "hop"): ("non-streaming", "nginx proxy_pass hop"),
        ("json", "gateway"): ("non-streaming", "gateway, dedup off"),
        ("json", "gateway-unique"): ("non-streaming", "gateway, dedup off, unique bodies"),
        ("json", "gateway-dedup-unique"): ("non-streaming", "gateway, dedup ON, unique bodies"),
        ("stream", "direct"): ("streaming", "direct (fake provider)"),
        ("stream", "hop"): ("streaming", "nginx hop (proxy_buffering off)"),
        ("stream", "gateway"): ("streaming", "gateway, dedup off"),
    }

    def fcell(r):
        f = r.foreign(cpus)
        return f"{f:.0%}" + (" ⚠" if f > 0.15 else "")

    w(f"## Throughput (wrk -t{meta.get('threads', 2)} -c{conns})")
    w("")
    w("| round | mode | target | req/s | × nginx hop | × direct | CPU µs/req own | CPU µs/req box | wrk µs/req | p50 ms | p99 ms | errors | others |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rnd in rounds:
        for (phase, target), (mode, name) in labels.items():
            r = get(rnd, phase, target, conns)
            if not r:
                continue
            h, d = get(rnd, phase, "hop", conns), get(rnd, phase, "direct", conns)
            w(f"| {rnd} | {mode} | {name} | {r.rps:,.0f} | {r.rps / h.rps:.2f} | {r.rps / d.rps:.2f} | {r.own_cpu:.1f} | "
              f"{r.box_cpu:.1f} | {r.wrk_cpu:.1f} | {r['lat_p50'] / 1000:.2f} | {r['lat_p99'] / 1000:.2f} | {r.errors} | {fcell(r)} |")
    w("")
    w("Dedup's overhead (the same unique bodies, dedup on vs off):")
    w("")
    for rnd in rounds:
        on, off = get(rnd, "json", "gateway-dedup-unique", conns), get(rnd, "json", "gateway-unique", conns)
        on1, off1 = get(rnd, "json", "gateway-dedup-unique", 1), get(rnd, "json", "gateway", 1)
        if on and off:
            line = (f"- round {rnd}: {on.rps / off.rps - 1:+.1%} req/s, {on.own_cpu - off.own_cpu:+.1f} µs CPU/request "
                    f"({off.own_cpu:.1f} → {on.own_cpu:.1f})")
            if on1 and off1:
                line += f"; at c1 the mean latency differs by {(on1['lat_mean'] - off1['lat_mean']) / 1000:+.3f} ms"
            w(line)
    w("")

    # ---- single connection -------------------------------------------------------------------------------------
    w("## Single connection (wrk -t1 -c1)")
    w("")
    w("| round | mode | target | req/s | mean ms | p50 ms | p99 ms | added mean vs direct | added p50 vs direct | CPU µs/req own | others |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for rnd in rounds:
        for (phase, target), (mode, name) in labels.items():
            r = get(rnd, phase, target, 1)
            if not r:
                continue
            d = get(rnd, phase, "direct", 1)
            w(f"| {rnd} | {mode} | {name} | {r.rps:,.0f} | {r['lat_mean'] / 1000:.3f} | {r['lat_p50'] / 1000:.3f} | "
              f"{r['lat_p99'] / 1000:.3f} | {(r['lat_mean'] - d['lat_mean']) / 1000:+.3f} ms | "
              f"{(r['lat_p50'] - d['lat_p50']) / 1000:+.3f} ms | {r.own_cpu:.1f} | {fcell(r)} |")
    w("")

    # ---- stream timing -----------------------------------------------------------------------------------------
    w("## Streams: time to first byte and to the first chunk")
    w("")
    w(f"curl: `%{{time_starttransfer}}` over {meta.get('timing_n', '?')} sequential requests on one keep-alive connection "
      "(first byte = the status line). `stream_timing.py`: the same over a raw socket, timing the first byte, the first `data:` "
      f"event and the end of the body; *zero-latency* = the whole canned stream at once ({meta.get('timing_n', '?')} requests); "
      f"*trickling* = `trickle_server.py`: the first event at once, then one every 5 ms (~50 ms) ({meta.get('slow_n', '?')} requests after 20 not counted; the gateway "
      "reaches that fake as model deepseek-chat). Means in ms.")
    w("")
    w("| round | target | curl TTFB mean (p50) | zero-latency: first byte / first chunk / end | trickling: first byte / first chunk / end | first chunk vs direct (zero-latency / trickling) |")
    w("|---|---|---|---|---|---|")
    for rnd in rounds:
        dfast, dslow = stream_rec(rnd, "fast", "direct"), stream_rec(rnd, "slow", "direct")
        for target in ("direct", "hop", "gateway"):
            c = next((r for r in curls if r["round"] == rnd and r["target"] == target), None)
            f, s = stream_rec(rnd, "fast", target), stream_rec(rnd, "slow", target)
            ccell = f"{float(c['ttfb_mean_ms']):.3f} ({float(c['ttfb_p50_ms']):.3f})" if c else "–"
            fc = f"{f['ttfb']['mean']:.3f} / {f['ttfc']['mean']:.3f} / {f['total']['mean']:.3f}" if f else "–"
            sc = f"{s['ttfb']['mean']:.3f} / {s['ttfc']['mean']:.3f} / {s['total']['mean']:.3f}" if s else "–"
            added = "–"
            if f and s and dfast and dslow:
                added = f"{f['ttfc']['mean'] - dfast['ttfc']['mean']:+.3f} / {s['ttfc']['mean'] - dslow['ttfc']['mean']:+.3f} ms"
            w(f"| {rnd} | {target} | {ccell} | {fc} | {sc} | {added} |")
    w("")

    # ---- stability ---------------------------------------------------------------------------------------------
    if len(rounds) > 1:
        w("## Stability across rounds")
        w("")
        w("| measurement | " + " | ".join(f"round {r}" for r in rounds) + " | spread (max−min)/mean |")
        w("|---|" + "---|" * len(rounds) + "---|")

        def spread_row(name, values):
            vs = [v for v in values if v is not None]
            if not vs:
                return
            mean = sum(vs) / len(vs)
            spread = (max(vs) - min(vs)) / mean if mean else 0
            w(f"| {name} | " + " | ".join("–" if v is None else f"{v:.3g}" for v in values) + f" | {spread:.1%} |")

        for phase in ("json", "stream"):
            g = lambda r, t=phase: get(r, t, "gateway", conns)
            h = lambda r, t=phase: get(r, t, "hop", conns)
            spread_row(f"{phase}: gateway ÷ hop", [g(r).rps / h(r).rps if g(r) and h(r) else None for r in rounds])
            spread_row(f"{phase}: gateway req/s", [g(r).rps if g(r) else None for r in rounds])
            spread_row(f"{phase}: hop req/s", [h(r).rps if h(r) else None for r in rounds])
            spread_row(f"{phase}: gateway CPU µs/req", [g(r).own_cpu if g(r) else None for r in rounds])
            spread_row(f"{phase}: hop CPU µs/req", [h(r).own_cpu if h(r) else None for r in rounds])
            spread_row(f"{phase}: c1 gateway mean ms", [get(r, phase, "gateway", 1)["lat_mean"] / 1000 if get(r, phase, "gateway", 1) else None for r in rounds])
        w("")
    if meta.get("gateway_log_warnings", "0") != "0":
        w(f"The gateways logged {meta['gateway_log_warnings']} warnings or errors (other than wrk's connections cut at the end of each run).")
        w("")
    return out


if __name__ == "__main__":
    main()
