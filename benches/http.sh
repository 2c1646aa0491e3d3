#!/usr/bin/env bash
# Whole-request benchmark: installs wrk (Debian) if missing, then runs the bench binary.
# ROUNDS, DURATION (seconds) and CONNECTIONS tune it; see benches/http.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get update && apt-get install -y wrk
fi
command -v curl >/dev/null || apt-get install -y curl
cargo bench --bench http --all-features
