#!/usr/bin/env bash
# Builds the Debian bookworm VM image of the openzfs:: tests (and of the
# full-host drills) from Debian's packages only, and caches it outside the
# clone; prints the image directory. Rebuilt when a package version it is
# made of, or this script, changes.
#   STRATA_VM_CACHE  cache root (default ~/.cache/strata-test)
#
# The directory holds:
#   root.img              ext4 root filesystem (tests boot qcow2 overlays of it)
#   root.tar              the same tree, as a host for full-host drills
#   vmlinuz, initrd.img   the image's own kernel and initramfs
#   id_ed25519            the ssh key root accepts (test-only, made here)
#   versions              the package versions the cache key was made from
#
# Contents: minbase, Debian's kernel, zfs-dkms + zfsutils-linux from
# bookworm-backports (module built in the chroot for the image's kernel),
# openssh-server, sanoid (to compare output with), faketime, busybox.
# Network: systemd-networkd with QEMU user-mode's fixed address; nothing
# else on the image reaches out (timers masked).
set -euo pipefail

if [ "${1:-}" = "--customize" ]; then
  # Runs inside mmdebstrap's customize hook: $2 is the image's root.
  R=$2
  chroot "$R" apt-get install -y -qq -t bookworm-backports zfs-dkms zfsutils-linux >&2
  # the module must exist for the image's kernel, or the image is useless
  kver=$(ls "$R/lib/modules" | sort -V | tail -1)
  ls "$R/lib/modules/$kver/updates/dkms/zfs.ko"* >/dev/null
  chroot "$R" apt-get clean
  rm -rf "$R"/var/lib/apt/lists/*
  echo strata-vm > "$R/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 strata-vm\n' > "$R/etc/hosts"
  printf '/dev/vda / ext4 rw,relatime 0 1\n' > "$R/etc/fstab"
  mkdir -p "$R/etc/systemd/network"
  printf '[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    > "$R/etc/systemd/network/10-qemu.network"
  systemctl --root="$R" enable systemd-networkd.service >&2
  # nothing runs on its own: no apt, no sanoid timer, no zed mail, no fsck timers
  for u in apt-daily.timer apt-daily-upgrade.timer sanoid.timer sanoid-prune.service \
    zfs-zed.service e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer \
    dpkg-db-backup.timer systemd-networkd-wait-online.service zfs-scrub-monthly@.timer \
    zfs-scrub-weekly@.timer zfs-trim-monthly@.timer zfs-trim-weekly@.timer; do
    systemctl --root="$R" mask "$u" >/dev/null 2>&1 || true
  done
  install -d -m 700 "$R/root/.ssh"
  install -m 600 "$3" "$R/root/.ssh/authorized_keys"
  printf 'PermitRootLogin prohibit-password\nUseDNS no\nMaxSessions 64\nMaxStartups 64\n' \
    > "$R/etc/ssh/sshd_config.d/strata-vm.conf"
  exit 0
fi

SCRIPT=$(readlink -f "$0")
CACHE=${STRATA_VM_CACHE:-$HOME/.cache/strata-test}/vm
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

for tool in mmdebstrap qemu-system-x86_64 mke2fs qemu-img; do
  command -v "$tool" >/dev/null || {
    echo "vm-image: $tool is missing: apt-get install mmdebstrap qemu-system-x86 qemu-utils e2fsprogs" >&2
    exit 1
  }
done

# The cache key: this script and the versions Debian offers today of what
# the image is made of (a private apt state, so the host's is untouched).
APT=$CACHE/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
cat > "$APT/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main contrib
deb http://deb.debian.org/debian bookworm-updates main contrib
deb http://deb.debian.org/debian-security bookworm-security main contrib
deb http://deb.debian.org/debian bookworm-backports main contrib
EOF
aptopts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Dir::State::status=/dev/null")
PKGS=(linux-image-amd64 zfs-dkms zfsutils-linux openssh-server systemd sanoid faketime busybox)
if apt-get "${aptopts[@]}" -qq update >&2 2>/dev/null; then
  versions=$(apt-cache "${aptopts[@]}" madison "${PKGS[@]}")
  key=$( { printf '%s\n' "$versions"; cat "$SCRIPT"; } | sha256sum | cut -c1-16)
  DIR=$CACHE/bookworm-zfs-$key
else
  # offline: the newest image built before, if any
  DIR=$(ls -dt "$CACHE"/bookworm-zfs-*/ 2>/dev/null | head -1)
  DIR=${DIR%/}
  [ -n "$DIR" ] && [ -f "$DIR/ready" ] || {
    echo "vm-image: cannot reach deb.debian.org and no image is cached in $CACHE" >&2
    exit 1
  }
  echo "$DIR"
  exit 0
fi

if [ ! -f "$DIR/ready" ]; then
  echo "building the VM image into $DIR (once per package versions; about 8 minutes cold)" >&2
  start=$(date +%s)
  rm -rf "$DIR" "$DIR.tmp"
  mkdir -p "$DIR.tmp"
  T=$DIR.tmp
  ssh-keygen -q -t ed25519 -N '' -C strata-vm-test -f "$T/id_ed25519"
  mmdebstrap --variant=minbase --components="main contrib" \
    --include=linux-image-amd64,linux-headers-amd64,systemd-sysv,openssh-server,udev,kmod,iproute2,sanoid,faketime,busybox,zstd,procps \
    --setup-hook='echo "deb http://deb.debian.org/debian bookworm-backports main contrib" > "$1"/etc/apt/sources.list.d/backports.list' \
    --customize-hook="$SCRIPT --customize \"\$1\" $T/id_ed25519.pub" \
    bookworm "$T/root.tar" >&2
  mkdir "$T/tree"
  tar -C "$T/tree" --numeric-owner -xpf "$T/root.tar"
  cp "$(ls "$T"/tree/boot/vmlinuz-* | sort -V | tail -1)" "$T/vmlinuz"
  cp "$(ls "$T"/tree/boot/initrd.img-* | sort -V | tail -1)" "$T/initrd.img"
  mke2fs -q -t ext4 -L root -d "$T/tree" "$T/root.img" 4G
  rm -rf "$T/tree"
  printf '%s\n' "$versions" > "$T/versions"
  echo "built in $(( $(date +%s) - start )) s" > "$T/build-time"
  touch "$T/ready"
  mv "$T" "$DIR"
  # older images go: one cached image at a time
  for old in "$CACHE"/bookworm-zfs-*; do
    [ "$old" = "$DIR" ] || rm -rf "$old"
  done
  echo "VM image ready: $(cat "$DIR/build-time")" >&2
fi
echo "$DIR"
