#!/usr/bin/env bash
# The audit on a generated 1M-call log: calls/s and peak RSS of the whole CLI.
#   [RUNS=3] bash crates/tierwise-audit/benches/bench_1m.sh [CALLS] [OUT_DIR]
# The log is generated from examples/workload.jsonl.gz into OUT_DIR (default /tmp); it is not
# committed. Needs /usr/bin/time (Debian package `time`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
calls="${1:-1000000}"
dir="${2:-/tmp}"
log="$dir/tierwise-bench-$calls.jsonl"
cargo build --release --quiet -p tierwise
if [ ! -f "$log" ]; then
  cargo run --release --quiet -p tierwise-dev --bin gen_bench_log -- --calls "$calls" --out "$log"
fi
echo "log: $log ($(du -hL "$log" | cut -f1), $calls calls)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
# RUNS audits of the same log (default 3): the first may still share the disk with the
# generator's writeback; the median is the figure to quote.
runs="${RUNS:-3}"
rates=()
for i in $(seq 1 "$runs"); do
  /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB peak RSS" \
    ./target/release/tierwise audit "$log" --json > "$dir/tierwise-bench-report.json" 2> "$dir/tierwise-bench-time.txt"
  line=$(tail -1 "$dir/tierwise-bench-time.txt")
  wall=$(echo "$line" | cut -d' ' -f1)
  rate=$(python3 -c "print(round($calls / $wall))")
  rates+=("$rate")
  echo "run $i: $line, $(python3 -c "print(f'{$rate:,}')") calls/s (load $(cut -d' ' -f1 /proc/loadavg))"
done
python3 -c "import statistics; print(f'median of $runs runs: {statistics.median([$(IFS=,; echo "${rates[*]}")]):,.0f} calls/s')"
