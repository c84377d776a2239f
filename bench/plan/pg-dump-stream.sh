#!/usr/bin/env bash
# pg-dump-stream.sh - benchmark of the host plan's PostgreSQL source (`strata run`).
#
# Measures, on a throwaway PostgreSQL 15 cluster filled by `pgbench -i`:
#   1. that the dump (`pg_dump --format=custom --compress=0`, started by strata)
#      is streamed into the repository with NO temporary file anywhere: the first
#      run goes under strace, and every path opened for writing / created /
#      renamed / linked / unlinked outside the repository, the state dir, /dev and
#      /proc is listed (expected: none). While the timed run goes, pg_dump's
#      stdout is also read from /proc (expected: a pipe).
#   2. wall time and peak RSS of `strata run` (on a run WITHOUT strace):
#      /usr/bin/time -v (max RSS over strata and its children) plus VmHWM of the
#      strata process and of pg_dump, sampled from /proc while they run.
#   3. how much a second run after a day-like change adds to the repository:
#      +1 % new rows appended to pgbench_accounts, 1 % of the rows updated in one
#      clustered key range, plain VACUUM (ANALYZE); growth = du -sb of the repo
#      after minus before run 2, as a percentage of the dump size (the stored
#      file's size, `bytes_total` of run 1's JSON report). Target: < 5 %.
#
# Repositories: the strace'd run writes repo-a (proof only, deleted after the
# check); the timed run 1, the change and the timed run 2 use repo-b.
#
# Usage (as root; needs runuser, strace, /usr/bin/time, python3, jq):
#   bench/plan/pg-dump-stream.sh 2>&1 | tee /tmp/pg-dump-stream.log
# Environment:
#   STRATA_BIN  strata binary (default /tmp/strata-bench-bin, a copy of
#               target/release/strata so a rebuild cannot swap it mid-run)
#   BASE        work directory, wiped at start and (unless KEEP=1) at the end
#               (default /var/tmp/pgbench-strata)
#   PORT        PostgreSQL port (default 55432)       SCALE  pgbench scale (default 130)
#   PGBIN       PostgreSQL bin dir (default /usr/lib/postgresql/15/bin)
#   KEEP=1      keep BASE (cluster stopped, repo, logs) after the run
#   FILLER      blank (default): pgbench's own data, whose filler column is 84
#               blanks and abalance 0, so the dump compresses ~90x and even a
#               full second copy would cost ~1 % of the dump; random: after
#               `pgbench -i`, pgbench_accounts is rewritten (same row count, same
#               char(84) width, same DB size) with hex filler from md5(random()),
#               which zstd compresses only ~2x, so repository growth reflects
#               deduplication rather than compression
# Re-runnable: a cluster left running in BASE by an earlier run is stopped and
# BASE is recreated. Figures are printed as `RESULT key=value` lines at the end.
set -euo pipefail

STRATA_BIN=${STRATA_BIN:-/tmp/strata-bench-bin}
BASE=${BASE:-/var/tmp/pgbench-strata}
PORT=${PORT:-55432}
SCALE=${SCALE:-130}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
KEEP=${KEEP:-0}
FILLER=${FILLER:-blank}
case $FILLER in
  blank)  FILLER_SQL="''" ;;
  random) FILLER_SQL="substr(md5(random()::text) || md5(random()::text) || md5(random()::text), 1, 84)" ;;
  *) echo "FILLER must be blank or random" >&2; exit 1 ;;
esac
export STRATA_PASSWORD=${STRATA_PASSWORD:-x}   # the repository password (password_env)

PGDATA=$BASE/pgdata
SOCK=$BASE/sock
STATE=$BASE/state
REPO_A=$BASE/repo-a          # strace'd run (no-temp-file proof)
REPO_B=$BASE/repo-b          # timed run 1, change, timed run 2
LOGS=$BASE/logs
STRACE_LOG=$BASE/strace.log

log() { printf '\n== %s  %s\n' "$(date +%T)" "$*" >&2; }
result() { printf 'RESULT %s=%s\n' "$1" "$2"; printf 'RESULT %s=%s\n' "$1" "$2" >>"$LOGS/results.txt"; }
pg() { runuser -u postgres -- "$@"; }
# psql as postgres over TCP, one value out (-At), stop on the first error.
sql() { pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "$PORT" -U postgres -d bench -c "$1"; }

# ---------------------------------------------------------------- preflight
for x in "$STRATA_BIN" "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/pgbench" "$PGBIN/psql" /usr/bin/time; do
  [[ -x $x ]] || { echo "missing: $x" >&2; exit 1; }
done
command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace; }
command -v jq >/dev/null || { echo "missing: jq" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }
# strata runs `pg_dump` from PATH: make sure it is PostgreSQL 15's.
export PATH=$PGBIN:$PATH

stop_cluster() {
  if [[ -f $PGDATA/postmaster.pid ]]; then
    pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}
cleanup() {
  local rc=$?
  stop_cluster
  if [[ $KEEP == 1 ]]; then echo "KEEP=1: left $BASE" >&2; else rm -rf "$BASE"; fi
  exit $rc
}

# An earlier run's cluster (KEEP=1 or an interrupted run): stop it, start clean.
stop_cluster
rm -rf "$BASE"
mkdir -p "$BASE" "$PGDATA" "$SOCK" "$STATE" "$LOGS"
chown postgres: "$PGDATA" "$SOCK" "$LOGS"
chmod 755 "$BASE"
trap cleanup EXIT
if ss -ltn "sport = :$PORT" | grep -q LISTEN; then echo "port $PORT is in use" >&2; exit 1; fi

# ---------------------------------------------------------------- machine
log "machine"
result nproc "$(nproc)"
result mem_total_kib "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
result cpu "\"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)\""
result kernel "$(uname -r)"
result loadavg_start "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
result strata_version "\"$("$STRATA_BIN" --version)\""
result strata_sha256 "$(sha256sum "$STRATA_BIN" | cut -c1-16)"
result fs "\"$(df -T "$BASE" | awk 'NR==2 {print $1" "$2}')\""

# ---------------------------------------------------------------- cluster
log "initdb + start PostgreSQL on 127.0.0.1:$PORT"
pg "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres --no-sync >"$LOGS/initdb.log"
# fsync=off: throwaway cluster, it only speeds up the load; it does not change the dump.
pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOGS/postgres.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c fsync=off" start >/dev/null
result postgres_version "\"$(pg "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c 'SHOW server_version')\""
result pg_dump_version "\"$(pg_dump --version)\""

log "createdb bench; pgbench -i -s $SCALE"
pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres bench
t0=$(date +%s)
pg "$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PORT" -U postgres bench >"$LOGS/pgbench-init.log" 2>&1
result pgbench_init_s "$(( $(date +%s) - t0 ))"
if [[ $FILLER == random ]]; then
  log "FILLER=random: rewrite pgbench_accounts with random hex filler"
  t0=$(date +%s)
  # A new table in aid order (as pgbench -i lays it out), then swapped in; no
  # dead tuples left behind, the DB size stays that of pgbench -i.
  sql "BEGIN;
    CREATE TABLE acc_new (LIKE pgbench_accounts INCLUDING ALL);
    INSERT INTO acc_new SELECT aid, bid, abalance, $FILLER_SQL FROM pgbench_accounts ORDER BY aid;
    DROP TABLE pgbench_accounts;
    ALTER TABLE acc_new RENAME TO pgbench_accounts;
    COMMIT;"
  sql 'VACUUM (ANALYZE) pgbench_accounts'
  result filler_rewrite_s "$(( $(date +%s) - t0 ))"
fi
result filler "$FILLER"
result scale "$SCALE"
result db_size_bytes "$(sql "SELECT pg_database_size('bench')")"
result db_size_pretty "\"$(sql "SELECT pg_size_pretty(pg_database_size('bench'))")\""
result accounts_rows_initial "$(sql 'SELECT count(*) FROM pgbench_accounts')"

# ---------------------------------------------------------------- plans
# Two plans, identical but for the repository; one state_dir (job locks).
write_plan() { # FILE REPO
  cat >"$1" <<EOF
host = "bench"
state_dir = "$STATE"

[repository.local]
url = "$2"
password_env = "STRATA_PASSWORD"

[[job]]
name = "db"

[[job.step]]
kind = "backup"

[[job.step.source]]
kind = "postgres"
databases = ["bench"]
host = "127.0.0.1"
port = $PORT
user = "postgres"
globals = false
EOF
}
write_plan "$BASE/plan-a.toml" "$REPO_A"
write_plan "$BASE/plan-b.toml" "$REPO_B"
"$STRATA_BIN" config check --config "$BASE/plan-a.toml"
"$STRATA_BIN" init --repo "$REPO_A" --quiet
"$STRATA_BIN" init --repo "$REPO_B" --quiet

# `strata run`, exit code and JSON report kept; a non-zero exit stops the
# benchmark with strata's own stderr shown (no working around failures).
check_run() { # RC NAME
  if [[ $1 != 0 ]]; then
    echo "strata run ($2) exited $1; stderr:" >&2
    cat "$LOGS/$2.stderr" >&2
    echo "stdout:" >&2
    cat "$LOGS/$2.json" >&2
    exit 1
  fi
}

# ---------------------------------------------------------------- run 1 under strace (repo A)
log "run 1a: strace'd strata run -> repo A (no-temp-file proof)"
# -f: follow strata's threads and children (pg_dump, incl. the pg_wrapper perl
# script it may be); --seccomp-bpf: stop only on the traced calls; -y: print the path behind each fd (the opened file, the
# dirfd of *at calls); -s 4096: no truncated paths.
# chdir/fchdir are traced so a relative path without a dirfd can be trusted to
# be relative to the starting directory ($BASE).
TRACE=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,mkdir,mkdirat,mknod,mknodat,truncate,unlink,unlinkat,rmdir,memfd_create,chdir,fchdir
rc=0
(cd "$BASE" && strace --seccomp-bpf -f -qq -y -s 4096 -e trace=$TRACE -o "$STRACE_LOG" \
  "$STRATA_BIN" run db --config "$BASE/plan-a.toml" --json) \
  >"$LOGS/run1a.json" 2>"$LOGS/run1a.stderr" || rc=$?
check_run "$rc" run1a
result run1a_strace_bytes_total "$(jq '.bytes_total' "$LOGS/run1a.json")"
result run1a_strace_wall_s_report "$(jq '.duration' "$LOGS/run1a.json")"
result strace_log_lines "$(wc -l <"$STRACE_LOG")"

# Parse the strace log: join "<unfinished ...>" / "<... resumed>" halves per
# pid, then list every call that creates or writes a path. The path of a
# successful open is taken from the returned fd (-y: "= 5</abs/path>"), else
# from the argument (relative names resolved against the dirfd's path).
python3 - "$STRACE_LOG" "$REPO_A" "$STATE" "$BASE" >"$LOGS/strace-summary.txt" <<'PY'
import os, re, sys
log, repo, state, cwd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
pending, calls = {}, []
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"(\d+)\s+(.*)$", line)
    if not m:
        continue
    pid, rest = m.groups()
    if rest.endswith("<unfinished ...>"):
        pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
        continue
    r = re.match(r"<\.\.\. \w+ resumed>(.*)$", rest)
    if r:
        rest = pending.pop(pid, "") + r.group(1)
    if rest.startswith("+++") or rest.startswith("---"):
        continue
    calls.append((pid, rest))

WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE")
strs = lambda s: re.findall(r'"((?:[^"\\]|\\.)*)"', s)
def resolve(dirfd_path, name):
    if name.startswith("/"):
        return name
    return os.path.normpath(os.path.join(dirfd_path or cwd, name))
def dirfds(args):  # "AT_FDCWD</cwd>" or "7</dir>" before each string arg
    return re.findall(r'(?:AT_FDCWD|\d+)<([^>]*)>, "', args)

events = []  # (syscall, path, detail, ok, pid)
chdirs = []
for pid, rest in calls:
    m = re.match(r"(\w+)\((.*)\) += (.*)$", rest)
    if not m:
        continue
    name, args, ret = m.groups()
    ok = not ret.startswith("-1")
    if name in ("chdir", "fchdir"):
        chdirs.append(rest)
        continue
    if name in ("open", "openat", "openat2", "creat"):
        flags = re.search(r"\b(O_[A-Z_|]+|0)\b", args.split('",', 1)[-1])
        flags = flags.group(1) if flags else ""
        if name != "creat" and not any(f in flags for f in WRITE_FLAGS):
            continue
        fdp = re.match(r"\d+<(.*)>$", ret)
        if fdp:
            path = fdp.group(1)
        else:
            s = strs(args); d = dirfds(args)
            path = resolve(d[0] if d else "", s[0] if s else "?")
        events.append((name, path, flags, ok, pid))
    elif name == "memfd_create":
        events.append((name, "memfd:" + (strs(args) or ["?"])[0], "", ok, pid))
    else:  # rename*, link*, symlink*, mkdir*, mknod*, truncate, unlink*, rmdir
        s = strs(args); d = dirfds(args)
        paths = [resolve(d[i] if i < len(d) else "", p) for i, p in enumerate(s)]
        for p in paths:
            events.append((name, p, "", ok, pid))

def under(p, root):
    return p == root or p.startswith(root.rstrip("/") + "/")
inside_repo = [e for e in events if under(e[1], repo)]
inside_state = [e for e in events if under(e[1], state)]
outside = [e for e in events if not (under(e[1], repo) or under(e[1], state)
           or e[1].startswith("/dev/") or e[1].startswith("/proc/")
           or e[1].startswith("pipe:") or e[1].startswith("socket:"))]
devproc = [e for e in events if e[1].startswith(("/dev/", "/proc/"))]

print(f"calls parsed: {len(calls)}; create/write/rename/unlink events: {len(events)}")
print(f"chdir/fchdir calls: {len(chdirs)}" + "".join("\n  " + c for c in chdirs))
print(f"events inside the repository: {len(inside_repo)} "
      f"({len({e[1] for e in inside_repo})} distinct paths)")
staged = {e[1] for e in inside_repo if "/tmp/" in e[1][len(repo):] and e[0].startswith("open")}
print(f"  of which files staged in the repository's own tmp/ (a pack, index or snapshot "
      f"written there, then linked to its final name): {len(staged)}")
rel = [c for c in calls if re.search(r'^\w+\("[^/]', c[1])]
print(f"calls with a relative path and no dirfd: {len(rel)}" + "".join("\n  " + c[1] for c in rel))
print(f"events inside state_dir: {len(inside_state)}")
for p in sorted({e[1] for e in inside_state}):
    kinds = sorted({e[0] + (' ' + e[2] if e[2] else '') for e in inside_state if e[1] == p})
    size = os.path.getsize(p) if os.path.isfile(p) else ("dir" if os.path.isdir(p) else "gone")
    print(f"  {p}  [{'; '.join(kinds)}]  size now: {size}")
print(f"events on /dev or /proc: {len(devproc)}: "
      + ", ".join(sorted({e[1] for e in devproc})))
print(f"events OUTSIDE repo/state_dir//dev//proc: {len(outside)}")
for p in sorted({e[1] for e in outside}):
    kinds = sorted({e[0] + (' ' + e[2] if e[2] else '') + ('' if e[3] else ' (failed)')
                    for e in outside if e[1] == p})
    size = os.path.getsize(p) if os.path.isfile(p) else "not a file / gone"
    print(f"  {p}  [{'; '.join(kinds)}]  size now: {size}")
# Largest file written or created outside the repository (state_dir included).
sizes = [(os.path.getsize(e[1]), e[1]) for e in events
         if not under(e[1], repo) and e[3] and os.path.isfile(e[1])]
print("largest file created/written outside the repository: "
      + (f"{max(sizes)[1]} ({max(sizes)[0]} bytes)" if sizes else "none"))
print("OUTSIDE_EVENTS=%d" % len(outside))
print("OUTSIDE_PATHS=%d" % len({e[1] for e in outside}))
PY
cat "$LOGS/strace-summary.txt" >&2
result strace_outside_events "$(sed -n 's/^OUTSIDE_EVENTS=//p' "$LOGS/strace-summary.txt")"
result strace_outside_paths "$(sed -n 's/^OUTSIDE_PATHS=//p' "$LOGS/strace-summary.txt")"
# The strace'd repository is not needed any more.
rm -rf "$REPO_A"

# ---------------------------------------------------------------- timed runs (repo B)
# Runs `strata run` under /usr/bin/time -v and samples, every 0.2 s, VmHWM of
# strata and of its pg_dump child, and where pg_dump's stdout points.
timed_run() { # NAME
  local name=$1 rc=0
  /usr/bin/time -v -o "$LOGS/$name.time" \
    "$STRATA_BIN" run db --config "$BASE/plan-b.toml" --json \
    >"$LOGS/$name.json" 2>"$LOGS/$name.stderr" &
  local tpid=$! spid="" s_hwm=0 d_hwm=0 d_fd1="" c v
  while kill -0 "$tpid" 2>/dev/null; do
    [[ -n $spid ]] || spid=$(pgrep -P "$tpid" | head -1 || true)
    if [[ -n $spid ]]; then
      v=$(awk '/^VmHWM/ {print $2}' "/proc/$spid/status" 2>/dev/null || true)
      [[ -n $v && $v -gt $s_hwm ]] && s_hwm=$v
      for c in $(pgrep -P "$spid" || true); do
        [[ $(cat "/proc/$c/comm" 2>/dev/null) == pg_dump ]] || continue
        v=$(awk '/^VmHWM/ {print $2}' "/proc/$c/status" 2>/dev/null || true)
        [[ -n $v && $v -gt $d_hwm ]] && d_hwm=$v
        [[ -n $d_fd1 ]] || d_fd1=$(readlink "/proc/$c/fd/1" 2>/dev/null || true)
      done
    fi
    sleep 0.2
  done
  wait "$tpid" || rc=$?
  check_run "$rc" "$name"
  result "${name}_wall" "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$LOGS/$name.time")"
  result "${name}_wall_s_report" "$(jq '.duration' "$LOGS/$name.json")"
  result "${name}_user_s" "$(awk -F': ' '/User time/ {print $2}' "$LOGS/$name.time")"
  result "${name}_sys_s" "$(awk -F': ' '/System time/ {print $2}' "$LOGS/$name.time")"
  result "${name}_cpu_pct" "$(awk -F': ' '/Percent of CPU/ {print $2}' "$LOGS/$name.time")"
  result "${name}_maxrss_kib_time_v" "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$LOGS/$name.time")"
  result "${name}_strata_vmhwm_kib" "$s_hwm"
  result "${name}_pg_dump_vmhwm_kib" "$d_hwm"
  result "${name}_pg_dump_stdout" "\"$d_fd1\""
  result "${name}_bytes_total" "$(jq '.bytes_total' "$LOGS/$name.json")"
  result "${name}_bytes_added" "$(jq '.bytes_added' "$LOGS/$name.json")"
  result "${name}_files" "$(jq '.files' "$LOGS/$name.json")"
  result "${name}_snapshot" "$(jq -r '.snapshot_id' "$LOGS/$name.json")"
  result "${name}_status" "$(jq -r '.status' "$LOGS/$name.json")"
}

# Baseline: the same pg_dump into a pipe counted by wc (no strata): its time
# is the floor for a run's wall time, its byte count must equal bytes_total.
log "baseline: pg_dump | wc -c"
t0=$(date +%s.%N)
base_bytes=$(pg_dump --format=custom --compress=0 --no-password --host=127.0.0.1 \
  --port="$PORT" --username=postgres --dbname=bench | wc -c)
result baseline_pg_dump_wc_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b-a}')"
result baseline_pg_dump_bytes "$base_bytes"

log "run 1: timed strata run -> repo B"
sync
timed_run run1
repo_after1=$(du -sb "$REPO_B" | cut -f1)
result repo_after_run1_bytes "$repo_after1"
DUMP=$(jq '.bytes_total' "$LOGS/run1.json")
result dump_bytes "$DUMP"
"$STRATA_BIN" stats --repo "$REPO_B" --json >"$LOGS/stats1.json"
# The biggest object the repository stages (a pack, in tmp/ before its link).
result repo_largest_pack_bytes "$(find "$REPO_B/data" -type f -printf '%s\n' | sort -n | tail -1)"
result repo_packs_after_run1 "$(find "$REPO_B/data" -type f | wc -l)"

# ---------------------------------------------------------------- day-like change
log "day-like change: +1 % rows appended, 1 % updated in one key range, VACUUM"
N=$(sql 'SELECT count(*) FROM pgbench_accounts')
MAX=$(sql 'SELECT max(aid) FROM pgbench_accounts')
ONE=$(( N / 100 ))
# New accounts above the current max aid, as pgbench would make them
# (bid = account's branch, abalance 0, filler blank).
INS=$(sql "WITH i AS (INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
  SELECT a, (a - 1) / 100000 % $SCALE + 1, 0, $FILLER_SQL FROM generate_series($MAX + 1, $MAX + $ONE) a
  RETURNING 1) SELECT count(*) FROM i")
# One clustered key range in the middle of the table.
LO=$(( N / 2 + 1 )); HI=$(( LO + ONE - 1 ))
UPD=$(sql "WITH u AS (UPDATE pgbench_accounts SET abalance = abalance + 1
  WHERE aid BETWEEN $LO AND $HI RETURNING 1) SELECT count(*) FROM u")
sql 'VACUUM (ANALYZE)'
result change_rows_before "$N"
result change_inserted "$INS"
result change_updated "$UPD"
result change_update_range "\"aid $LO..$HI\""
result accounts_rows_after "$(sql 'SELECT count(*) FROM pgbench_accounts')"
result db_size_after_bytes "$(sql "SELECT pg_database_size('bench')")"

# ---------------------------------------------------------------- run 2
log "run 2: timed strata run -> repo B"
sync
timed_run run2
repo_after2=$(du -sb "$REPO_B" | cut -f1)
result repo_after_run2_bytes "$repo_after2"
growth=$(( repo_after2 - repo_after1 ))
result run2_repo_growth_bytes "$growth"
result run2_repo_growth_pct_of_dump "$(awk -v g="$growth" -v d="$DUMP" 'BEGIN {printf "%.2f", 100*g/d}')"
# The same growth against what run 1 stored (the cost of a full second copy):
# with compressible data this, not the % of the dump, shows deduplication.
result run2_repo_growth_pct_of_run1_repo "$(awk -v g="$growth" -v r="$repo_after1" 'BEGIN {printf "%.2f", 100*g/r}')"
result run2_dump_growth_bytes "$(( $(jq '.bytes_total' "$LOGS/run2.json") - DUMP ))"
"$STRATA_BIN" stats --repo "$REPO_B" --json >"$LOGS/stats2.json"
result stats_after_run2 "$(jq -c . "$LOGS/stats2.json")"
result target_met "$(awk -v g="$growth" -v d="$DUMP" 'BEGIN {print (100*g/d < 5) ? "yes" : "no"}')"
result loadavg_end "\"$(cut -d' ' -f1-3 /proc/loadavg)\""

log "done"
echo "--- strace summary"; cat "$LOGS/strace-summary.txt"
echo "--- results"; cat "$LOGS/results.txt"
