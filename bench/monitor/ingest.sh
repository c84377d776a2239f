#!/usr/bin/env bash
# Ingest benchmark of `strata monitor serve` (not a test): wrk against the
# Uptime Kuma route (/api/push/<token>) and the healthchecks route
# (/ping/<uuid>), over 1 check and over N checks (default 10,000; each
# request picks a random check), on SQLite (WAL, group commit: a ping
# answered 200 is on disk) or on PostgreSQL (PG_URL=postgres://…).
# Prints requests/s, p50/p99 latency and the server's RSS.
# Usage: bench/monitor/ingest.sh [N] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-10000}
secs=${2:-20}
bin=${STRATA_BIN:-target/release/strata}
work=$(mktemp -d /tmp/strata-ingest.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work" "$n" <<'PY'
import sys, uuid
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/checks.toml", "w") as f, open(f"{work}/ids.lua", "w") as ids:
    ids.write("uuids = {}\ntokens = {}\n")
    for i in range(n):
        u = str(uuid.UUID(int=(0x5f1b << 112) | i, version=4))
        t = f"tok{i:08d}abcdefghijklmnop"
        f.write(f'[[check]]\nname = "c{i}"\nhost = "h{i % 100}"\njob = "j{i // 100}"\nuuid = "{u}"\ntoken = "{t}"\nperiod = "1d"\n\n')
        ids.write(f'uuids[{i+1}] = "{u}"\ntokens[{i+1}] = "{t}"\n')
PY
db=${PG_URL:-sqlite://$work/m.db}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(date +%s.%N)
"$bin" monitor serve --listen 127.0.0.1:$port --checks "$work/checks.toml" --database "$db" --alert-interval 3600 --workers "${WORKERS:-8}" >"$work/log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
echo "checks: $n; database: $([ -n "${PG_URL:-}" ] && echo postgres || echo sqlite); start-up with sync: $(echo "$(date +%s.%N) - $t0" | bc) s"
for route in kuma hc; do
  for spread in one all; do
    cat > "$work/req.lua" <<LUA
dofile("$work/ids.lua")
local n = #uuids
math.randomseed(os.time())
request = function()
  local i = 1
  if "$spread" == "all" then i = math.random(n) end
  if "$route" == "kuma" then
    return wrk.format("GET", "/api/push/" .. tokens[i] .. "?status=up&msg=OK&ping=")
  end
  return wrk.format("GET", "/ping/" .. uuids[i])
end
LUA
    out=$(wrk -t2 -c32 -d"${secs}s" --latency -s "$work/req.lua" "http://127.0.0.1:$port")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "route=$route checks=$([ $spread = one ] && echo 1 || echo $n) req/s=$rps p50=$p50 p99=$p99 non-2xx=${non2xx:-0}"
  done
done
echo "RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status); peak $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
