#!/usr/bin/env python3
"""Run torch_bench.py and tf_bench.py repeatedly on a shared machine and
summarise median and range per framework, workload and metric.

Usage (pure stdlib; any python3 works as the driver):
  python3 bench/python/run_baseline.py [--reps 3] [--threads 2]
        [--frameworks torch,tf] [--workloads gemm,lenet5,resnet18]
        [--python reference/.venv/bin/python] [--runs runs.jsonl]
        [--budget 3600] [--summary-only]

The benchmark machine may be shared with other jobs (e.g. cargo builds).
A run only starts once the whole machine has been nearly idle for a few
seconds (< --quiet busy cores), and during each run the driver measures how
much CPU *other* processes used (busy CPU from /proc/stat minus the
benchmark's own CPU time). Runs where others used more than --max-noise cores
on average are recorded but do not count; the driver keeps going until each
(framework, workload) has --reps clean runs or --budget seconds have passed.
If a pair ends with fewer clean runs, its least noisy runs fill in and the
table marks it with '*'.

Every run is appended as one JSON line to --runs (if given), so an
interrupted session can be resumed and the table can be regenerated with
--summary-only.
"""
import argparse
import json
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
RESULT_RE = re.compile(r"^RESULT (\w+)((?: \w+=\S+)+)\s*$")


def cpu_jiffies():
    """(total, busy) jiffies over all CPUs; busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    return sum(vals), sum(vals) - vals[3] - vals[4]


def busy_cores(seconds):
    t1, b1 = cpu_jiffies()
    time.sleep(seconds)
    t2, b2 = cpu_jiffies()
    return (os.cpu_count() or 1) * (b2 - b1) / max(1, t2 - t1)


def wait_quiet(deadline, threshold, window=3.0):
    """Block until a `window`-second sample shows < threshold busy cores.
    Returns (busy, waited_s, quiet?)."""
    t0 = time.time()
    while True:
        b = busy_cores(window)
        if b < threshold:
            return b, time.time() - t0, True
        if time.time() >= deadline:
            return b, time.time() - t0, False


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
    lines = p.stdout.strip().splitlines()
    m = RESULT_RE.match(lines[-1]) if lines else None
    if p.returncode != 0 or not m or m.group(1) != workload:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"{fw} {workload}: failed (rc {p.returncode})")
    metrics = {k: float(v) for k, v in (kv.split("=", 1) for kv in m.group(2).split())}
    return metrics, others, wall, p.stdout


def summarise(runs, fws, wls, reps, max_noise):
    print("| framework | workload | metric | median | range (min - max) | clean runs used |")
    print("|---|---|---|---|---|---|")
    for wl in wls:
        for fw in fws:
            rs = [r for r in runs if r["fw"] == fw and r["workload"] == wl]
            if not rs:
                continue
            clean = [r for r in rs if r["others_cores"] <= max_noise]
            noisy = sorted((r for r in rs if r["others_cores"] > max_noise), key=lambda r: r["others_cores"])
            used = clean if len(clean) >= reps else clean + noisy[:reps - len(clean)]
            flag = "" if len(clean) >= reps else "*"
            for k in used[0]["metrics"]:
                vals = [r["metrics"][k] for r in used]
                print(f"| {fw} | {wl} | {k} | {statistics.median(vals):.4g} | "
                      f"{min(vals):.4g} - {max(vals):.4g} | {min(len(clean), len(used))}/{len(used)}{flag} |")
    print(f"\n(clean = other processes used <= {max_noise} cores on average during the run; "
          "* = too few clean runs, least noisy ones filled in)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="clean runs wanted per framework and workload")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frameworks", default="torch,tf")
    ap.add_argument("--workloads", default="gemm,lenet5,resnet18")
    ap.add_argument("--python", default=os.path.join(ROOT, "reference", ".venv", "bin", "python"))
    ap.add_argument("--budget", type=float, default=3600.0, help="give up after this many seconds")
    ap.add_argument("--quiet", type=float, default=0.15, help="busy cores below which the machine counts as idle")
    ap.add_argument("--max-noise", type=float, default=0.15,
                    help="max CPU cores used by other processes during a clean run")
    ap.add_argument("--runs", default=None, help="JSON-lines file of runs, appended to and resumed from")
    ap.add_argument("--log", default=None, help="append the benchmarks' full output here")
    ap.add_argument("--summary-only", action="store_true")
    a = ap.parse_args()

    fws = a.frameworks.split(",")
    wls = a.workloads.split(",")
    runs = []
    if a.runs and os.path.exists(a.runs):
        with open(a.runs) as f:
            runs = [json.loads(line) for line in f if line.strip()]
        runs = [r for r in runs if r.get("threads", a.threads) == a.threads]
    if not a.summary_only:
        deadline = time.time() + a.budget
        logf = open(a.log, "a") if a.log else None
        runf = open(a.runs, "a") if a.runs else None
        while True:
            def n_clean(fw, wl):
                return sum(1 for r in runs if r["fw"] == fw and r["workload"] == wl
                           and r["others_cores"] <= a.max_noise)
            todo = [(wl, fw) for wl in wls for fw in fws if n_clean(fw, wl) < a.reps]
            if not todo:
                break
            # Finish workloads in order; within one, the framework with fewest clean runs first.
            wl = todo[0][0]
            fw = min((f for w, f in todo if w == wl), key=lambda f: (n_clean(f, wl), fws.index(f)))
            pre, waited, quiet = wait_quiet(deadline, a.quiet)
            if not quiet:
                print(f"{time.strftime('%H:%M:%S')} budget spent, machine still busy ({pre:.2f} cores)")
                break
            load = os.getloadavg()[0]
            metrics, noise, wall, out = run_once(a.python, fw, wl, a.threads)
            rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "fw": fw, "workload": wl, "threads": a.threads,
                   "metrics": metrics, "others_cores": round(noise, 3), "idle_check_cores": round(pre, 3),
                   "waited_s": round(waited, 1), "load1": round(load, 2), "wall_s": round(wall, 2)}
            runs.append(rec)
            print(f"{rec['time']} {fw:5s} {wl:8s} waited {waited:4.0f}s, load1 {load:.2f}, "
                  f"others during run {noise:.2f} cores{' (noisy)' if noise > a.max_noise else ''}, "
                  f"wall {wall:.1f}s -> " + " ".join(f"{k}={v:g}" for k, v in metrics.items()), flush=True)
            if runf:
                runf.write(json.dumps(rec) + "\n")
                runf.flush()
            if logf:
                logf.write(f"==== {rec['time']} {fw} {wl} others {noise:.2f}\n{out}\n")
                logf.flush()
        print()
    summarise(runs, fws, wls, a.reps, a.max_noise)


if __name__ == "__main__":
    main()
