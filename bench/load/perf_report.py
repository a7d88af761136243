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
    runs = {}
    for line in open(sys.argv[2]):
        if line.startswith("kind=wrk"):
            runs = dict(p.split("=", 1) for p in line.split() if "=" in p)
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
