#!/usr/bin/env bash
# Checks the portable binary, the packages and the OCI image on this machine:
#  1. glibc symbol versions <= 2.17, only glibc's own shared libraries;
#  2. in a Debian bullseye root (mmdebstrap from deb.debian.org, cached):
#     init, backup, bit-exact restore, snapshots --json, monitor serve
#     /healthz, user/group names in `ls -l`, HTTPS through the host's CA
#     bundle; then in a root holding only the binary and the glibc objects
#     it loads (no shell, no CA bundle): the same, run straight from the host;
#  3. the .deb in a fresh bookworm root: dpkg -i, systemd-analyze verify of
#     every unit, man -l, bash completion; the .rpm lists the same files;
#  4. the OCI image: the seed's container-style backup of a read-only bind
#     mounted root, restored bit-exact;
#  5. size and start-up time of `strata --version`.
# Needs root (chroot, mount, podman). Prints what it checked; exits non-zero
# at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
[ "$(id -u)" -eq 0 ] || { echo "check-portable: needs root (chroot, mount, podman)" >&2; exit 1; }
need=(mmdebstrap rpm podman hyperfine man curl)
missing=()
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]/man/man-db}" >/dev/null
fi
# Always from this tree (both are quick when nothing changed).
./scripts/build-portable.sh
./scripts/package.sh >/dev/null 2>&1 || ./scripts/package.sh
bin=$top/target/portable/strata
cache="${STRATA_BUILD_TOOLS:-$HOME/.cache/strata-build}/roots"
mkdir -p "$cache"
work=$(mktemp -d /tmp/strata-portable.XXXXXX)
mounts=()
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# A Debian root of SUITE with extra packages, from a cached tarball.
debian_root() {
  local suite=$1 dir=$2 include=$3
  local tar="$cache/$suite-$(echo "$include" | sha256sum | cut -c1-8).tar"
  if [ ! -s "$tar" ]; then
    mmdebstrap --quiet --variant=minbase --include="$include" "$suite" "${tar%.tar}.tmp.tar" http://deb.debian.org/debian
    mv "${tar%.tar}.tmp.tar" "$tar"
  fi
  mkdir -p "$dir"
  tar -C "$dir" -xf "$tar"
}

# (A snapshot of one path holds that directory's contents; of several, the
# paths under their base names.)
# Random test data with a user/group owner, a symlink, a hard link, modes.
make_data() {
  local d=$1 owner=$2
  mkdir -p "$d/sub/deeper"
  head -c 6000000 /dev/urandom > "$d/big.bin"
  for i in $(seq 1 50); do echo "file $i $RANDOM" > "$d/sub/f$i.txt"; done
  head -c 100000 /dev/urandom > "$d/sub/deeper/mid.bin"
  ln -s ../big.bin "$d/sub/link"
  ln "$d/sub/f1.txt" "$d/sub/hard1"
  chmod 0640 "$d/sub/f2.txt"; chmod 4755 "$d/sub/f3.txt"
  chown -R "$owner" "$d/sub"
}

# Bit-exact: contents, types, modes, owners, mtimes of every entry.
same_tree() {
  local a=$1 b=$2
  diff -r --no-dereference "$a" "$b" >/dev/null || fail "contents differ: $a $b"
  local sa sb
  sa=$(cd "$a" && find . -printf '%p %y %m %U %G %s %T@ %l\n' | sort)
  sb=$(cd "$b" && find . -printf '%p %y %m %U %G %s %T@ %l\n' | sort)
  [ "$sa" = "$sb" ] || { diff <(echo "$sa") <(echo "$sb") | head >&2; fail "metadata differs: $a $b"; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_healthz() {
  local port=$1
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  fail "monitor on port $port never answered /healthz"
}

# ---------------------------------------------------------------- 1
say "1. glibc symbol versions and shared libraries"
max=$(objdump -T "$bin" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)*' | sed 's/GLIBC_//' | sort -V | tail -1)
echo "highest GLIBC_ symbol version: $max"
[ "$(printf '%s\n2.17\n' "$max" | sort -V | tail -1)" = "2.17" ] || fail "needs glibc $max > 2.17"
needed=$(objdump -p "$bin" | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')
echo "NEEDED: $needed"
for lib in $needed; do
  case $lib in
    libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-x86-64.so.2) ;;
    *) fail "depends on $lib, which is not part of glibc" ;;
  esac
done

# ---------------------------------------------------------------- 2
say "2a. Debian bullseye root (glibc $(true; echo 2.31))"
bull=$work/bullseye
debian_root bullseye "$bull" "ca-certificates,passwd,findutils,diffutils"
mount -t proc proc "$bull/proc"; mounts+=("$bull/proc")
mount --bind /dev "$bull/dev"; mounts+=("$bull/dev")
echo "glibc in the root: $(chroot "$bull" /usr/bin/ldd --version 2>/dev/null | sed -n 1p)"
install -m 0755 "$bin" "$bull/usr/local/bin/strata"
# This machine's egress goes through a TLS proxy with a local CA: the root
# trusts what the host trusts, as a fleet's hosts trust their own CAs.
cp /usr/local/share/ca-certificates/*.crt "$bull/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$bull" update-ca-certificates >/dev/null 2>&1 || true
cp /etc/resolv.conf "$bull/etc/resolv.conf"
chroot "$bull" groupadd -g 2345 backupops
chroot "$bull" useradd -u 2345 -g backupops -M alice
make_data "$bull/data" 2345:2345
chroot "$bull" /usr/bin/env STRATA_REPOSITORY=/repo STRATA_PASSWORD=portable-test /bin/sh -ec '
  strata --version
  strata --quiet init
  strata --quiet backup /data
  strata snapshots --json > /tmp/snaps.json
  strata --quiet restore latest --target /restore
  strata ls --long latest /sub > /tmp/ls.txt
'
same_tree "$bull/data" "$bull/restore" && echo "restore: bit-exact (contents, modes, owners, mtimes)"
grep -q '"paths"' "$bull/tmp/snaps.json" && echo "snapshots --json: $(tr -d '\n ' < "$bull/tmp/snaps.json" | cut -c1-120)…"
grep -m2 -E ' alice +backupops ' "$bull/tmp/ls.txt"
grep -qE '^-rw-r----- alice +backupops ' "$bull/tmp/ls.txt" || fail "ls -l shows no alice/backupops"
port=$(free_port)
chroot "$bull" /usr/local/bin/strata monitor serve --listen "127.0.0.1:$port" --database sqlite:///tmp/monitor.db > "$work/bull-monitor.log" 2>&1 &
pids+=($!)
wait_healthz "$port"
echo "monitor serve: GET /healthz -> $(curl -s "http://127.0.0.1:$port/healthz" | head -c 80)"
# HTTPS + DNS: a public host that is no S3 store answers; what matters is
# that name resolution and certificate verification passed.
out=$(chroot "$bull" /usr/bin/env AWS_ACCESS_KEY_ID=probe AWS_SECRET_ACCESS_KEY=probe STRATA_PASSWORD=x \
  strata -r s3:https://pypi.org/strata-probe snapshots 2>&1 || true)
echo "HTTPS to pypi.org: ${out%%$'\n'*}"
case $out in *"not a strata repository"*) ;; *) fail "HTTPS/DNS from the bullseye root: $out" ;; esac

say "2b. a root with nothing but the binary and the glibc objects it loads"
min=$work/minimal
mkdir -p "$min/usr/bin" "$min/etc" "$min/tmp"
cp "$bin" "$min/usr/bin/strata"
ldd "$bin" | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}' | while read -r lib; do
  mkdir -p "$min$(dirname "$lib")"; cp -L "$lib" "$min$lib"
done
interp=$(readelf -l "$bin" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
mkdir -p "$min$(dirname "$interp")"; cp -L "$interp" "$min$interp"
printf 'root:x:0:0::/:/usr/bin/strata\nalice:x:2345:2345::/:/usr/bin/strata\n' > "$min/etc/passwd"
printf 'root:x:0:\nbackupops:x:2345:\n' > "$min/etc/group"
cp /etc/resolv.conf "$min/etc/resolv.conf"
echo "files in the root: $(cd "$min" && find . -type f | sort | tr '\n' ' ')"
make_data "$min/data" 2345:2345
m() { chroot "$min" /usr/bin/strata "$@"; }
export STRATA_REPOSITORY=/repo STRATA_PASSWORD=portable-test
m --quiet init
m --quiet backup /data
m snapshots --json > "$work/min-snaps.json"
m --quiet restore latest --target /restore
same_tree "$min/data" "$min/restore" && echo "restore: bit-exact"
m ls --long latest /sub > "$work/min-ls.txt"
grep -m1 -E '^-rw-r----- alice +backupops ' "$work/min-ls.txt" || fail "names in the minimal root"
port=$(free_port)
chroot "$min" /usr/bin/strata monitor serve --listen "127.0.0.1:$port" --database sqlite:///tmp/monitor.db > "$work/min-monitor.log" 2>&1 &
pids+=($!)
wait_healthz "$port"
echo "monitor serve: GET /healthz -> 200"
out=$(AWS_ACCESS_KEY_ID=probe AWS_SECRET_ACCESS_KEY=probe chroot "$min" /usr/bin/strata -r s3:https://pypi.org/strata-probe snapshots 2>&1 || true)
echo "HTTPS with no CA bundle in the root (bundled roots): ${out%%$'\n'*}" | cut -c1-220
unset STRATA_REPOSITORY STRATA_PASSWORD

# ---------------------------------------------------------------- 3
say "3. the .deb in a fresh bookworm root, the .rpm's file list"
deb=$(ls "$top"/target/portable/*.deb | head -1)
rpmf=$(ls "$top"/target/portable/*.rpm | head -1)
book=$work/bookworm
debian_root bookworm "$book" "systemd,procps,man-db,bash-completion"
mount -t proc proc "$book/proc"; mounts+=("$book/proc")
cp "$deb" "$book/tmp/strata.deb"
chroot "$book" dpkg -i /tmp/strata.deb | tail -1
units=$(cd "$book/usr/lib/systemd/system" && ls strata*.service strata*.timer)
echo "units: $(echo $units)"
for u in $units; do
  inst=${u/@./@nightly.}
  [ "$u" = "$inst" ] || cp "$book/usr/lib/systemd/system/$u" "$book/etc/systemd/system/$inst"
  chroot "$book" env SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$inst" > "$work/verify.log" 2>&1 \
    || { cat "$work/verify.log" >&2; fail "systemd-analyze verify $inst"; }
  if [ -s "$work/verify.log" ]; then cat "$work/verify.log" >&2; fail "systemd-analyze verify $inst warned"; fi
  echo "systemd-analyze verify $inst: ok"
done
npages=$(ls "$book/usr/share/man/man1" | grep -c '^strata')
for p in "$book"/usr/share/man/man1/strata*.1.gz; do
  chroot "$book" man -l "/usr/share/man/man1/$(basename "$p")" > /dev/null 2>"$work/man.err" || fail "man -l $(basename "$p")"
  [ ! -s "$work/man.err" ] || { cat "$work/man.err" >&2; fail "man -l $(basename "$p") warned"; }
done
echo "man -l: $npages pages render; strata-backup(1) begins: $(chroot "$book" man -l /usr/share/man/man1/strata-backup.1.gz 2>/dev/null | sed -n 4p | sed 's/^ *//')"
comp=$(chroot "$book" bash -c '
  source /usr/share/bash-completion/bash_completion
  source /usr/share/bash-completion/completions/strata
  COMP_WORDS=(strata ba); COMP_CWORD=1; COMP_LINE="strata ba"; COMP_POINT=9
  _strata strata ba strata; echo "${COMPREPLY[*]}"
  COMP_WORDS=(strata server token a); COMP_CWORD=3
  _strata strata a token; echo "${COMPREPLY[*]}"')
echo "bash completion: 'strata ba' -> ${comp%%$'\n'*}; 'strata server token a' -> ${comp##*$'\n'}"
case $comp in *backup*) ;; *) fail "bash completion: $comp" ;; esac
dpkg-deb -c "$deb" | awk '{print $6}' | grep -v '/$' | sed 's|^\./|/|' | sort > "$work/deb.list"
rpm -qpl "$rpmf" 2>/dev/null | sort > "$work/rpm.list"
echo "deb: $(wc -l < "$work/deb.list") files, rpm: $(wc -l < "$work/rpm.list") files; differences (distribution conventions):"
diff "$work/deb.list" "$work/rpm.list" | grep '^[<>]' || true
d=$(diff "$work/deb.list" "$work/rpm.list" | grep '^[<>]' | grep -v -e '/usr/share/doc/strata/copyright' -e '_strata$' || true)
[ -z "$d" ] || fail "deb and rpm differ: $d"

# ---------------------------------------------------------------- 4
say "4. OCI image: the seed's container-style backup of / mounted read-only"
conf=$work/containers.conf
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' > "$conf"
export CONTAINERS_CONF=$conf
image=$(./scripts/oci-image.sh 2>/dev/null | tail -1)
echo "image $image: $(podman image inspect "$image" --format '{{.Size}}') bytes; files: $(podman image save "$image" 2>/dev/null | wc -c) bytes saved"
mkdir -p "$work/oci-repo" "$work/oci-restore"
printf 'oci-test-password' > "$work/oci.pass"
podman secret rm strata_password >/dev/null 2>&1 || true
podman secret create strata_password "$work/oci.pass" >/dev/null
src_dirs="usr/share/doc etc/ssl"
# The seed's line, rewritten (docs/install.md), with a local repository.
seed_line() {
  podman run --rm \
    --name strata-backup-job \
    --security-opt label=type:spc_t \
    --hostname hermes \
    --secret strata_password,type=env,target=STRATA_PASSWORD \
    -v /:/mnt/root:ro \
    -v "$work/oci-repo:/repo" \
    -e STRATA_REPOSITORY=/repo \
    "$image" "$@"
}
seed_line --quiet init
seed_line backup --one-file-system /mnt/root/usr/share/doc /mnt/root/etc/ssl
podman run --rm --secret strata_password,type=env,target=STRATA_PASSWORD \
  -v "$work/oci-repo:/repo" -v "$work/oci-restore:/restore" -e STRATA_REPOSITORY=/repo \
  "$image" --quiet restore latest --target /restore
podman secret rm strata_password >/dev/null
for d in $src_dirs; do
  same_tree "/$d" "$work/oci-restore/$(basename "$d")"
  echo "/$d: restored bit-exact ($(find "/$d" | wc -l) entries)"
done
unset CONTAINERS_CONF

# ---------------------------------------------------------------- 5
say "5. size and start-up time"
echo "size: $(stat -c %s "$bin") bytes ($(( $(stat -c %s "$bin") / 1048576 )) MiB); deb $(stat -c %s "$deb") bytes, rpm $(stat -c %s "$rpmf") bytes"
hyperfine -N --warmup 20 --runs 300 "$bin --version" 2>/dev/null | grep -E 'Time|Range'
say "all checks passed"
