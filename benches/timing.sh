#!/usr/bin/env bash
# Wall-clock nanoseconds per request in process (no sockets, no HTTP parsing), for the
# same variants as benches/instructions.sh: one core (taskset -c 0 where available),
# variants interleaved, ROUNDS rounds (default 7), N requests per run (default 100000).
# Each variant's figure is the median over rounds of its ratio to the bare run of the same
# round, so a machine that slows down between rounds moves both sides of each ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-100000}
rounds=${ROUNDS:-7}
variants=${VARIANTS:-"bare plain signed sealed session-signed session-private signed-in-moka signed-in-redb identity"}
cargo bench --bench instructions --features moka,redb --no-run 2>/dev/null
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$(ls -t "$target"/release/deps/instructions-* | grep -v '\.d$' | head -1)
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
out=$(mktemp)
for r in $(seq "$rounds"); do
  for v in $variants; do
    ns=$("${pin[@]}" "$bin" "$v" "$n" 2>&1 >/dev/null | awk '/^ns\/request/ {print $2}')
    echo "$r $v $ns" >>"$out"
  done
done
python3 - "$out" $variants <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
variants = sys.argv[2:]
by = {}
for r, v, ns in rows:
    by.setdefault(r, {})[v] = int(ns)
print(f"{len(by)} rounds; ns/request are medians, ratios medians of per-round ratios to bare")
print(f"{'variant':<22} {'ns/request':>11} {'x bare':>8} {'overhead ns':>12}")
for v in variants:
    ns = statistics.median(b[v] for b in by.values())
    ratio = statistics.median(b[v] / b['bare'] for b in by.values())
    over = statistics.median(b[v] - b['bare'] for b in by.values())
    print(f"{v:<22} {ns:>11,.0f} {ratio:>8.3f} {over:>12,.0f}")
PY
rm -f "$out"
