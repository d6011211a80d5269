#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) one after another and prints a table:
# target, seconds, executions, crashes (artifacts/<target>/crash-* files written by libFuzzer).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer wants nightly flags, which
# RUSTC_BOOTSTRAP=1 enables on the stable toolchain. Seed corpora: python3 seed_corpora.py.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
mkdir -p logs
printf '%-20s %8s %12s %8s\n' target seconds executions crashes
for t in $targets; do
  mkdir -p corpus/$t
  cargo fuzz run -O "$t" corpus/$t -- -max_total_time="$secs" -rss_limit_mb=4096 -timeout=20 \
    -max_len=1048576 -print_final_stats=1 > logs/$t.log 2>&1
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' logs/$t.log | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls artifacts/$t 2>/dev/null | grep -c -E '^(crash|oom|timeout|leak)-' || true)
  printf '%-20s %8s %12s %8s\n' "$t" "$secs" "${runs:-?}" "$crashes"
done
