#!/usr/bin/env bash
# Instructions per request for each middleware variant, counted by callgrind: stable on a
# noisy machine, unlike wall-clock figures. Installs valgrind if missing.
# N (requests per variant, default 2000) tunes it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update && apt-get install -y valgrind; }
n=${N:-2000}
cargo bench --bench instructions --features moka,redb --no-run 2>/dev/null
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$(ls -t "$target"/release/deps/instructions-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)
printf '%-22s %14s %10s %12s\n' variant "instr/request" "x bare" "overhead"
bare=
for v in bare floor-one floor plain signed sealed session-signed session-private signed-in-moka signed-in-redb identity bare-new plain-new signed-new sealed-new session-signed-new session-private-new bare-crowded signed-crowded signed-in-moka-crowded identity-crowded bare-stuffed signed-stuffed signed-in-moka-stuffed bare-exported signed-exported signed-in-moka-exported; do
  valgrind --tool=callgrind --callgrind-out-file="$out/$v.out" --toggle-collect='*collect_on*' "$bin" "$v" "$n" >/dev/null 2>&1
  total=$(grep -m1 '^summary:' "$out/$v.out" | awk '{print $2}')
  per=$((total / n))
  case $v in bare|bare-new|bare-crowded|bare-stuffed|bare-exported) base=$per ;; esac
  python3 -c "import sys; p,b=int(sys.argv[2]),int(sys.argv[3]); print(f'{sys.argv[1]:<22} {p:>14,} {p/b:>10.3f} {p-b:>12,}')" "$v" "$per" "$base"
done
rm -rf "$out"
