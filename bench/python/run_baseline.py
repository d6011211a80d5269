#!/usr/bin/env python3
"""Run torch_bench.py and tf_bench.py several times per workload and summarise.

Usage (from anywhere; pure stdlib, any python3 works as the driver):
  python3 bench/python/run_baseline.py [--reps 3] [--threads 2]
        [--frameworks torch,tf] [--workloads gemm,lenet5,resnet18]
        [--python reference/.venv/bin/python] [--log FILE]

The machine may be shared: before each run the driver waits (up to
--max-wait s, and only while the total --budget is not spent) until the whole
machine is nearly idle, and during each run it
measures how much CPU *other* processes used (total busy CPU from /proc/stat
minus the benchmark's own CPU time). Runs where others used more than
--max-noise (in cores, averaged) are retried up to --retries times; the
cleanest attempt is kept and noisy results are flagged with '*'.
Prints a markdown table with median and [min, max] per metric.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = {"torch": "torch_bench.py", "tf": "tf_bench.py"}
RESULT_RE = re.compile(r"^RESULT (\w+)((?: \w+=[-+0-9.eEinfa]+)+)\s*$")


def cpu_jiffies():
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    idle = vals[3] + vals[4]
    return sum(vals), sum(vals) - idle


def busy_cores(seconds):
    t1, b1 = cpu_jiffies()
    time.sleep(seconds)
    t2, b2 = cpu_jiffies()
    ncpu = os.cpu_count() or 1
    return ncpu * (b2 - b1) / max(1, t2 - t1)


def wait_quiet(max_wait, threshold=0.15):
    t0 = time.time()
    while True:
        b = busy_cores(2.0)
        if b < threshold or time.time() - t0 > max_wait:
            return b, time.time() - t0


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(python, fw, workload, threads):
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    tot1, busy1 = cpu_jiffies()
    c1 = children_cpu()
    w0 = time.time()
    p = subprocess.run([python, os.path.join(HERE, SCRIPTS[fw]), workload, "--threads", str(threads)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.time() - w0
    tot2, busy2 = cpu_jiffies()
    own = children_cpu() - c1
    elapsed = (tot2 - tot1) / ncpu / hz
    others = max(0.0, ((busy2 - busy1) / hz - own) / max(elapsed, 1e-9))
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    m = RESULT_RE.match(last)
    if p.returncode != 0 or not m:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"{fw} {workload}: failed (rc {p.returncode})")
    metrics = {k: float(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
    return metrics, others, wall, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frameworks", default="torch,tf")
    ap.add_argument("--workloads", default="gemm,lenet5,resnet18")
    ap.add_argument("--python", default=os.path.join(ROOT, "reference", ".venv", "bin", "python"))
    ap.add_argument("--max-wait", type=float, default=180.0, help="max seconds to wait for an idle machine")
    ap.add_argument("--max-noise", type=float, default=0.15, help="max CPU cores used by others during a run")
    ap.add_argument("--retries", type=int, default=6)
    ap.add_argument("--budget", type=float, default=3600.0,
                    help="total seconds after which the driver stops waiting for an idle machine")
    ap.add_argument("--log", default=None, help="append full benchmark output here")
    a = ap.parse_args()

    fws = a.frameworks.split(",")
    wls = a.workloads.split(",")
    results = {}  # (fw, wl) -> list of (metrics, noise)
    logf = open(a.log, "a") if a.log else None
    t_start = time.time()
    for wl in wls:
        for rep in range(a.reps):
            for fw in fws:  # interleave frameworks so drift hits both alike
                best = None
                for attempt in range(1 + a.retries):
                    spent = time.time() - t_start
                    pre, waited = wait_quiet(max(0.0, min(a.max_wait, a.budget - spent)))
                    load = os.getloadavg()[0]
                    metrics, noise, wall, out = run_once(a.python, fw, wl, a.threads)
                    line = (f"{time.strftime('%H:%M:%S')} {fw:5s} {wl:8s} rep {rep + 1} try {attempt + 1}: "
                            f"waited {waited:.0f}s, idle-check {pre:.2f} cores busy, load1 {load:.2f}, "
                            f"others during run {noise:.2f} cores, wall {wall:.1f}s -> "
                            + " ".join(f"{k}={v:g}" for k, v in metrics.items()))
                    print(line, flush=True)
                    if logf:
                        logf.write(line + "\n" + out + "\n")
                        logf.flush()
                    if best is None or noise < best[1]:
                        best = (metrics, noise)
                    if noise <= a.max_noise or time.time() - t_start > a.budget:
                        break  # clean, or out of time
                results.setdefault((fw, wl), []).append(best)

    print()
    print(f"| framework | workload | metric | median | range (min - max) | runs |")
    print(f"|---|---|---|---|---|---|")
    for wl in wls:
        for fw in fws:
            runs = results[(fw, wl)]
            flag = "*" if any(n > a.max_noise for _, n in runs) else ""
            for k in runs[0][0]:
                vals = [r[k] for r, _ in runs]
                print(f"| {fw} | {wl} | {k} | {statistics.median(vals):.4g} | "
                      f"{min(vals):.4g} - {max(vals):.4g} | {len(vals)}{flag} |")
    print("\n(* = at least one run had other processes using more than "
          f"{a.max_noise} cores on average)")


if __name__ == "__main__":
    main()
