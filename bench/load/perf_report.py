#!/usr/bin/env python3
"""Summarises `perf script` output of the gateway under load (run-load.sh profile) as markdown on stdout.

    perf_report.py PERF_SCRIPT_TXT RUNS_FILE WHAT

Managed frames are named through the runtime's perf map (DOTNET_PerfMapEnabled=1, W^X off so that perf looks them up).
Inclusive = share of all samples of the gateway process with the method anywhere on the stack (counted once per
sample); self = share with the method as the leaf. The µs/request columns scale those shares by the gateway's CPU per
request measured during the profile (utime+stime ÷ requests), so they add up to that figure.
"""
import collections
import re
import sys

OFFSET = re.compile(r"\+0x[0-9a-f]+$")
TIER = re.compile(r"^\[[A-Za-z0-9]+\]\s*")


def clean(sym: str, dso: str) -> str:
    dso_name = dso.rsplit("/", 1)[-1]
    if sym in ("[unknown]", ""):
        return f"?? ({dso_name})"
    sym = OFFSET.sub("", sym)
    sym = TIER.sub("", sym)  # [OptimizedTier1], [PreJIT], ...
    # "instance void [Asm] Ns.Type::Method(args)[Optimized]" -> "Ns.Type::Method"
    sym = re.sub(r"\[(Optimized|OptimizedTier1|Tier0|Tier1|PreJIT|QuickJitted|Instrumented|OptimizedTier1OSR|MinOptJitted)[^\]]*\]$", "", sym)
    m = re.search(r"([\w.`<>$|,\[\]+-]+::[\w.`<>$|-]+)", sym)
    if m:
        name = m.group(1)
        return re.sub(r"\[[^\]]*\]", "", name) if "::" in name else name
    return sym if dso_name.startswith("[") or dso_name.endswith(".map") else f"{sym} ({dso_name})"


def managed(name: str) -> bool:
    return "::" in name


def namespace_bucket(name: str) -> str:
    typ = name.split("::", 1)[0]
    parts = typ.split(".")
    if parts[0] == "TokenRouter":
        return ".".join(parts[:3])
    if parts[0] in ("System", "Microsoft") and len(parts) > 2:
        if parts[1] in ("Private", "Runtime", "Collections", "Threading", "Buffers", "Text", "Diagnostics", "Net", "IO"):
            return ".".join(parts[:3])
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def parse(path):
    samples = []
    comm = None
    frames = []
    for line in open(path, errors="replace"):
        if not line.strip():
            if comm is not None:
                samples.append((comm, frames))
            comm, frames = None, []
            continue
        if not line[0].isspace():
            comm = line[:16].strip()
            frames = []
            continue
        m = re.match(r"\s*([0-9a-f]+)\s+(.*?)\s+\(([^()]*)\)\s*$", line)
        if m:
            frames.append(clean(m.group(2), m.group(3)))
        else:
            parts = line.strip().split(" ", 1)
            frames.append(clean(parts[1] if len(parts) > 1 else "", "?"))
    if comm is not None:
        samples.append((comm, frames))
    return samples


def thread_kind(comm: str, frames=()) -> str:
    joined = " ".join(frames[-12:])
    if "SocketAsyncEngine::EventLoop" in joined:
        return "socket engine (epoll)"
    if "ThreadPoolWorkQueue::Dispatch" in joined or "PortableThreadPool" in joined:
        return "thread pool workers"
    for key, label in ((".NET TP Worker", "thread pool workers"), (".NET Tiered Com", "tiered JIT compilation"),
                       (".NET Sockets", "socket engine (epoll)"), ("Server GC", "GC (server GC threads)"),
                       (".NET BGC", "GC (background)"), ("Kestrel", "Kestrel timers"), (".NET Timer", "timers"),
                       ("dotnet", "main thread")):
        if key in comm:
            return label
    return "other threads (unnamed: kernel scheduling, allocation helpers)" if comm.startswith(":") else comm


def main():
    samples = parse(sys.argv[1])
    runs, stats = {}, {}
    for line in open(sys.argv[2]):
        if line.startswith("kind=wrk"):
            rec = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if rec["phase"].startswith("profile-"):
                runs = rec
            elif rec["phase"].startswith("stat-"):
                stats[rec["target"]] = rec
    work = sys.argv[5] if len(sys.argv) > 5 else None
    what = sys.argv[3]
    commit = next((l.split("commit=")[1].split()[0] for l in open(sys.argv[2]) if "commit=" in l), "?")
    n = len(samples)
    if n == 0:
        print("No samples.")
        return
    requests = float(runs.get("requests", 0)) or 1
    cpu_per_req = float(runs.get("cpu_gw_us", 0)) / requests
    rps = requests / float(runs.get("duration_us", 1)) * 1e6

    inclusive = collections.Counter()
    self_ = collections.Counter()
    threads = collections.Counter()
    buckets = collections.Counter()
    dsos = collections.Counter()
    for comm, frames in samples:
        kind = thread_kind(comm, frames)
        threads[kind] += 1
        if not frames:
            continue
        leaf = frames[0]
        self_[leaf] += 1
        dsos[re.sub(r".*\((.*)\)$", r"\1", leaf) if "(" in leaf and not managed(leaf) else ("managed code" if managed(leaf) else "kernel")] += 1
        for f in set(frames):
            inclusive[f] += 1
        first_managed = next((f for f in frames if managed(f)), None)
        if kind != "thread pool workers" and kind != "socket engine (epoll)":
            buckets[f"[{kind}]"] += 1
        else:
            buckets[namespace_bucket(first_managed) if first_managed else "(no managed frame)"] += 1

    def pct(c):
        return f"{100 * c / n:.1f} %"

    def us(c):
        return f"{cpu_per_req * c / n:.1f}"

    out = []
    w = out.append
    w(f"# Gateway CPU profile under load ({what})")
    w("")
    w(f"`bench/load/run-load.sh profile {what}`: `perf record -F 999 -g` of the gateway process while wrk "
      f"-t{runs.get('threads', '?')} -c{runs.get('conns', '?')} loads it for {runs.get('seconds', '?')} s after a warm-up "
      "(DOTNET_PerfMapEnabled=1, W^X off so that perf resolves JIT'd code; everything else as in the load benchmark"
      + (f"; extra environment `{sys.argv[4].strip()}`" if len(sys.argv) > 4 and sys.argv[4].strip() else "") + "). "
      f"Commit {commit}.")
    w("")
    w(f"During the profile: {rps:,.0f} req/s, gateway CPU {cpu_per_req:.0f} µs/request; {n:,} samples. "
      "µs/req columns = share of samples × that CPU per request. Native frames of libcoreclr (stripped) show as `?? (libcoreclr.so)`: "
      "their cost is attributed to the managed caller in the inclusive and by-namespace views.")
    w("")
    if work and stats:
        w("## Syscalls, context switches and allocations per request")
        w("")
        w("`perf stat` on the process(es) during a further wrk run of the same length (the gateway, then the nginx hop), "
          "divided by that run's requests; allocations and GCs from `dotnet-counters` (System.Runtime) on the gateway meanwhile.")
        w("")
        counts = {}
        for target in ("gateway", "hop"):
            try:
                for line in open(f"{work}/perf-stat-{target}.csv"):
                    parts = line.strip().split(",")
                    if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                        counts.setdefault(parts[2], {})[target] = float(parts[0])
            except FileNotFoundError:
                pass
        req = {t: float(r["requests"]) for t, r in stats.items()}
        rps_ = {t: float(r["requests"]) / float(r["duration_us"]) * 1e6 for t, r in stats.items()}
        cpu = {"gateway": float(stats["gateway"]["cpu_gw_us"]) / req["gateway"] if "gateway" in stats else 0,
               "hop": float(stats["hop"]["cpu_hop_us"]) / req["hop"] if "hop" in stats else 0}
        w("| per request | gateway | nginx hop |")
        w("|---|---|---|")
        w(f"| req/s during the run | {rps_.get('gateway', 0):,.0f} | {rps_.get('hop', 0):,.0f} |")
        w(f"| CPU µs | {cpu['gateway']:.1f} | {cpu['hop']:.1f} |")
        for event, by in counts.items():
            if not any(by.values()):
                continue
            name = event.replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "**all syscalls**")
            w(f"| {name} | {by.get('gateway', 0) / req.get('gateway', 1):.2f} | {by.get('hop', 0) / req.get('hop', 1):.2f} |")
        try:
            sums = collections.defaultdict(float)
            n_rows = collections.Counter()
            for line in open(f"{work}/counters.csv"):
                parts = line.rstrip("\n").split(",")
                if len(parts) >= 5 and parts[1] == "System.Runtime":
                    try:
                        sums[parts[2]] += float(parts[4])
                        n_rows[parts[2]] += 1
                    except ValueError:
                        pass
            secs = n_rows.get("dotnet.gc.heap.total_allocated (By / 1 sec)", 0)
            if secs:
                gw_req = rps_["gateway"] * secs
                w(f"| bytes allocated | {sums['dotnet.gc.heap.total_allocated (By / 1 sec)'] / gw_req:,.0f} | – |")
                w(f"| thread-pool work items | {sums['dotnet.thread_pool.work_item.count ({work_item} / 1 sec)'] / gw_req:.2f} | – |")
                gcs = [sums.get(f"dotnet.gc.collections ({{collection}} / 1 sec)[gc.heap.generation=gen{g}]", 0) for g in range(3)]
                w(f"| GCs per 10,000 requests (gen0 / gen1 / gen2) | {' / '.join(f'{g / gw_req * 1e4:.1f}' for g in gcs)} | – |")
                w(f"| GC pause, % of wall time | {sums['dotnet.gc.pause.time (s / 1 sec)'] / secs * 100:.1f} % | – |")
                w(f"| lock contentions | {sums['dotnet.monitor.lock_contentions ({contention} / 1 sec)'] / gw_req:.4f} | – |")
        except FileNotFoundError:
            pass
        w("")
    w("## Where the CPU goes, by thread")
    w("")
    w("| thread | share | µs/req |")
    w("|---|---|---|")
    for k, c in threads.most_common():
        w(f"| {k} | {pct(c)} | {us(c)} |")
    w("")
    w("## By the nearest managed caller's namespace (thread pool + socket threads; other threads as a whole)")
    w("")
    w("Each sample counts once, for the managed method closest to the leaf (native helpers — allocation, GC triggered "
      "by allocation, memcpy, syscalls and the kernel's TCP work — count for the library that called them).")
    w("")
    w("| namespace | share | µs/req |")
    w("|---|---|---|")
    for k, c in buckets.most_common(30):
        w(f"| `{k}` | {pct(c)} | {us(c)} |")
    w("")
    w("## The gateway's own methods, by inclusive CPU")
    w("")
    w("Async methods show as their state machine's `MoveNext` (only the CPU of that resumption, not of awaited work that "
      "completed later on another stack).")
    w("")
    w("| method | inclusive | µs/req | self |")
    w("|---|---|---|---|")
    own = [(k, c) for k, c in inclusive.most_common() if k.startswith("TokenRouter.")]
    for k, c in own[:45]:
        w(f"| `{k}` | {pct(c)} | {us(c)} | {pct(self_[k])} |")
    w("")
    w("## All methods, by inclusive CPU (top 60)")
    w("")
    w("| method | inclusive | µs/req | self |")
    w("|---|---|---|---|")
    for k, c in inclusive.most_common(60):
        w(f"| `{k}` | {pct(c)} | {us(c)} | {pct(self_[k])} |")
    w("")
    w("## Leaf functions, by self CPU (top 40)")
    w("")
    w("| function | self | µs/req |")
    w("|---|---|---|")
    for k, c in self_.most_common(40):
        w(f"| `{k}` | {pct(c)} | {us(c)} |")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
