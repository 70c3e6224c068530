#!/usr/bin/env bash
# Warren's benchmark: builds warrend, Warren's agent `warren` and warren-bench in release, then
# measures a direct loopback baseline and the same workloads through Warren (with the ngrok crate
# as agent and with Warren's own agent; rathole and bore with --compare) in one run, printing a
# table and writing bench/out/results.txt. See bench/README.md.
#
#   bash bench/run.sh [--compare] [--quick] [extra warren-bench run flags, e.g. --sessions 2000]
#
# Everything runs on 127.0.0.1; every load loop is bounded in count and time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="bench/out"
tools="$out/tools"
mkdir -p "$out"

compare=0
for arg in "$@"; do
    [[ "$arg" == "--compare" ]] && compare=1
done

# 1,000 agent sessions need 1,000+ descriptors in the bench and in warrend.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "[bench] building warrend, warren and warren-bench (release)" >&2
cargo build --release --locked -p warrend -p warren-cli -p warren-bench >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/release"

extra=()
if (( compare )); then
    # rathole 0.5.0's lock file pins a `time` that no longer builds on current Rust, so it is
    # installed unlocked. Its TLS transport needs OpenSSL (native-tls); without the headers we
    # fall back to a Noise-only build.
    if [[ ! -x "$tools/bin/bore" ]]; then
        echo "[bench] installing bore-cli into $tools" >&2
        cargo install --locked bore-cli --root "$tools" >&2
    fi
    if [[ ! -x "$tools/bin/rathole" ]]; then
        echo "[bench] installing rathole into $tools" >&2
        if ! cargo install rathole --root "$tools" >&2; then
            echo "[bench] rathole with TLS did not build; installing the Noise-only build" >&2
            cargo install rathole --root "$tools" --no-default-features \
                --features server,client,noise >&2
            touch "$tools/rathole-noise-only"
        fi
    fi
    if [[ -e "$tools/rathole-noise-only" ]] || ! command -v openssl >/dev/null; then
        extra+=(--rathole-transport noise)
    fi
fi

if ! command -v wrk >/dev/null; then
    echo "[bench] wrk not found (apt-get install wrk); using the built-in load generator" >&2
fi

export WARREN_BENCH_COMMAND="bash bench/run.sh $*"
WARREN_BENCH_REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
    WARREN_BENCH_REVISION+=" (with uncommitted changes)"
fi
export WARREN_BENCH_REVISION

exec "$bin/warren-bench" run --warrend "$bin/warrend" --warren "$bin/warren" \
    --tools "$tools/bin" --out "$out" \
    "${extra[@]}" "$@"
