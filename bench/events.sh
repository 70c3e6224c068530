#!/usr/bin/env bash
# Warren's event-export benchmark: builds warrend and warren-bench in release (one cargo
# invocation), then measures (1) events/s through the durable outbox to a webhook and to a file,
# in process, against direct baselines measured in the same run, and (2) the data plane's HTTP
# requests/s and p99 through warrend with event export off versus on (a file destination
# subscribed to http_request_complete.v0), alternating off/on. Prints a table and writes
# bench/out/events.txt. See bench/README.md.
#
#   bash bench/events.sh [--quick] [extra warren-bench events flags, e.g. --events 50000]
#
# Everything runs on 127.0.0.1; every loop is bounded in count and time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="bench/out"
mkdir -p "$out"

# 64 load connections plus their proxied streams need descriptors in the bench and in warrend.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "[bench] building warrend and warren-bench (release)" >&2
cargo build --release --locked -p warrend -p warren-bench >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/release"

exec "$bin/warren-bench" events --warrend "$bin/warrend" --out "$out" "$@"
