#!/usr/bin/env bash
# Runs strata's whole test suite on a fresh Debian bookworm machine with the
# Rust toolchain: installs the system tools the tests use, then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(acl attr util-linux diffutils zfs-fuse btrfs-progs faketime procps openssh-server openssh-client sanoid zstd curl python3-aiosmtpd python3-fusepy e2fsprogs postgresql chromium podman sqlite3 mariadb-server mariadb-client runc busybox-static asciinema mmdebstrap qemu-system-x86 qemu-utils)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# The Debian VM image of the openzfs:: lane (OpenZFS from bookworm-backports)
# and Garage, the S3 store of the s3:: tests: each built once (the image per
# package versions) and cached outside the clone; built side by side.
vm_path=$(mktemp)
./scripts/vm-image.sh > "$vm_path" &
vm_pid=$!
STRATA_GARAGE_BIN=$(./scripts/garage.sh)
export STRATA_GARAGE_BIN
wait "$vm_pid"
STRATA_VM_IMAGE=$(cat "$vm_path")
rm -f "$vm_path"
export STRATA_VM_IMAGE
cargo test --workspace --release "$@"
# The whole suite (no test filter) also builds the portable binary, the
# packages and the OCI image and checks them in older and minimal roots
# (docs/install.md); it needs root, as the suite does.
if [ $# -eq 0 ]; then
  ./scripts/check-portable.sh
fi
