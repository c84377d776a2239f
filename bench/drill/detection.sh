#!/usr/bin/env bash
# Restore drills, detection time (issue 12, must-show 3): a simulated month
# of nightly backups and daily sample drills (strata runs under Debian's
# libfaketime, so drills and the coverage ledger see simulated days), with
# one stored pack corrupted at a random moment per trial. Prints, per trial,
# how long it took until a drill failed, and a summary per kind:
#   write  a byte flipped through the filesystem (the pack's mtime changes:
#          what a bad disk controller, a tool or an intruder leaves)
#   rot    a byte flipped and the mtime put back (what bit rot below the
#          filesystem looks like to strata: only reading finds it)
#
#   STRATA=target/release/strata TRIALS=20 DAYS=30 bench/drill/detection.sh
#   COVERAGE_DAYS=7 sets [job.drill] coverage_days; unset, the default
#   applies (as many days as the daily read budget needs: 1 here)
set -euo pipefail
STRATA=${STRATA:-$PWD/target/release/strata}
TRIALS=${TRIALS:-20}
DAYS=${DAYS:-30}
COVER=${COVERAGE_DAYS:-}
WARM=7
W=${WORK:-/tmp/strata-detect}
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -e "$FT" ] || { echo "needs libfaketime (apt-get install faketime)" >&2; exit 2; }
rm -rf "$W"
mkdir -p "$W/template"
export STRATA_PASSWORD=bench-detection

# run strata at simulated epoch second $1
at() {
  local t=$1; shift
  LD_PRELOAD=$FT FAKETIME="@$(date -u -d "@$t" '+%Y-%m-%d %H:%M:%S')" FAKETIME_DONT_FAKE_MONOTONIC=1 \
    "$STRATA" "$@"
}

# add $2 random files of 256 KiB to $1 (a night's new data)
grow() {
  python3 - "$1" "$2" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
k = len(os.listdir(d))
for i in range(k, k + n):
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(256 * 1024))
EOF
}

# flip one byte of a random pack of repository $1; kind $2 (write|rot)
corrupt() {
  python3 - "$1" "$2" <<'EOF'
import os, random, sys
repo, kind = sys.argv[1], sys.argv[2]
packs = []
for root, _, files in os.walk(os.path.join(repo, "data")):
    packs += [os.path.join(root, f) for f in files]
p = random.choice(packs)
st = os.stat(p)
with open(p, "r+b") as f:
    off = random.randrange(st.st_size)
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x40]))
if kind == "rot":
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
print(os.path.basename(p)[:12], off)
EOF
}

T=$W/template
plan() {
  cat > "$1/strata.toml" <<EOF
host = "h1"
state_dir = "$1/state"
[repository.r]
url = "$1/repo"
password_env = "STRATA_PASSWORD"

[[job]]
name = "j"
[job.drill]
${COVER:+coverage_days = $COVER}

[[job.step]]
kind = "backup"
paths = ["$1/data"]
EOF
}

DAY=86400
# simulated day 0 at 00:00 UTC, tomorrow
S=$(( ($(date +%s) / DAY + 1) * DAY ))
grow "$T/data" 400
plan "$T"
at "$S" init --repo "$T/repo" --pack-size 4 >/dev/null
# a week of nights before the trials: the ledger's rotation runs in
for d in $(seq 0 $((WARM - 1))); do
  grow "$T/data" 8
  at $((S + d * DAY + 3600)) run j --quiet --config "$T/strata.toml"
  at $((S + d * DAY + 5 * 3600 + 900)) drill j --quiet --config "$T/strata.toml"
done
S=$((S + WARM * DAY))
echo "template: $(find "$T/repo/data" -type f | wc -l) packs, $(du -sm "$T/repo" | cut -f1) MB; drills daily 05:15, coverage_days ${COVER:-default}"

results=$W/results.tsv
: > "$results"
for i in $(seq 1 "$TRIALS"); do
  kind=write
  [ $((i % 2)) -eq 0 ] && kind=rot
  rm -rf "$W/t"
  cp -a "$T" "$W/t"
  sed -i "s#$T#$W/t#g" "$W/t/strata.toml"
  u=$(( S + $(python3 -c "import random; print(random.randrange($DAYS * $DAY))") ))
  hit=""
  done_=""
  for d in $(seq 0 $((DAYS + ${COVER:-1} + 1))); do
    for ev in backup drill; do
      if [ $ev = backup ]; then t=$((S + d * DAY + 3600)); else t=$((S + d * DAY + 5 * 3600 + 900)); fi
      if [ -z "$hit" ] && [ "$u" -le "$t" ]; then hit=$(corrupt "$W/t/repo" $kind); fi
      if [ $ev = backup ]; then
        grow "$W/t/data" 8
        at $t run j --quiet --config "$W/t/strata.toml" || true
      else
        set +e
        at $t drill j --quiet --config "$W/t/strata.toml"
        rc=$?
        set -e
        if [ -n "$hit" ] && [ $rc -ne 0 ]; then
          h=$(python3 -c "print(round(($t - $u) / 3600, 1))")
          printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$kind" "$(( (u - S) / DAY ))" "$h" "$hit" | tee -a "$results"
          done_=1
          break 2
        fi
      fi
    done
  done
  [ -n "$done_" ] || printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$kind" "$(( (u - S) / DAY ))" "NOT-DETECTED" "$hit" | tee -a "$results"
done
# coverage: a month of nights and drills with no damage, then the ledger
# as the last drill left it
rm -rf "$W/t"
cp -a "$T" "$W/t"
sed -i "s#$T#$W/t#g" "$W/t/strata.toml"
for d in $(seq 0 $((DAYS - 1))); do
  grow "$W/t/data" 8
  at $((S + d * DAY + 3600)) run j --quiet --config "$W/t/strata.toml"
  at $((S + d * DAY + 5 * 3600 + 900)) drill j --quiet --config "$W/t/strata.toml"
done
echo "ledger after $DAYS undamaged days:"
at $((S + (DAYS - 1) * DAY + 6 * 3600)) drill ledger j --config "$W/t/strata.toml"
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for kind in ("write", "rot"):
    hs = [float(r[3]) for r in rows if r[1] == kind and r[3] != "NOT-DETECTED"]
    miss = sum(1 for r in rows if r[1] == kind and r[3] == "NOT-DETECTED")
    if hs:
        q = sorted(hs)
        print(f"{kind}: {len(hs)} trials detected, {miss} not; hours to detection: "
              f"min {q[0]}, median {statistics.median(q)}, p90 {q[int(0.9 * (len(q) - 1))]}, max {q[-1]}")
EOF
