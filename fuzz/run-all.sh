#!/usr/bin/env bash
# Runs every fuzz target for $SECS seconds (default 300), one after another.
# Needs cargo-fuzz; on a stable toolchain RUSTC_BOOTSTRAP=1 enables the -Z flags it uses.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${SECS:-300}
for t in pack_trailer index tree snapshot keyfile sanoid_conf monitor_input; do
  mkdir -p corpus/$t
  start=$(date +%s)
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" corpus/$t -- -max_total_time="$SECS" -max_len=4096 -rss_limit_mb=2048 > "logs-$t.txt" 2>&1
  echo "$t: exit $? after $(( $(date +%s) - start )) s, $(grep -E '^#[0-9]+.*DONE|Done [0-9]+ runs' "logs-$t.txt" | tail -1)"
done
