#!/usr/bin/env bash
# Warren's API benchmark: builds warrend and warren-bench in release (one cargo invocation), then
# measures the REST API (POST /credentials, GET /credentials) and agent authentications per second
# against a store of 100,000 credentials (10,000 with --quick) versus a store holding only the
# bootstrap credential, on SQLite and — when PostgreSQL answers on 127.0.0.1:5432 or
# WARREN_BENCH_DATABASE_URL is set — on PostgreSQL in a fresh schema. Prints a table and writes
# bench/out/api.txt. See bench/README.md.
#
#   bash bench/api.sh [--quick] [extra warren-bench api flags, e.g. --connections 32]
#
# Everything runs on 127.0.0.1; every loop is bounded in count and time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="bench/out"
mkdir -p "$out"

# Concurrent agent sessions and API connections need descriptors in the bench and in warrend.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "[bench] building warrend and warren-bench (release)" >&2
cargo build --release --locked -p warrend -p warren-bench >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/release"

exec "$bin/warren-bench" api --warrend "$bin/warrend" --out "$out" "$@"
