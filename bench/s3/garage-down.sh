#!/usr/bin/env bash
BENCH=${BENCH:-/var/tmp/bench}
kill "$(cat "$BENCH/server/pid")" "$(cat "$BENCH/garage/pid")" 2>/dev/null || true
