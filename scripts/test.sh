#!/usr/bin/env bash
# Runs strata's whole test suite on a fresh Debian bookworm machine with the
# Rust toolchain: installs the system tools the tests use, then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(acl attr util-linux diffutils zfs-fuse btrfs-progs faketime procps openssh-server openssh-client sanoid zstd curl python3-aiosmtpd python3-fusepy e2fsprogs postgresql chromium podman sqlite3 mariadb-server mariadb-client runc busybox-static asciinema)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# Garage, the S3 store of the s3:: tests: built once, cached outside the clone
STRATA_GARAGE_BIN=$(./scripts/garage.sh)
export STRATA_GARAGE_BIN
cargo test --workspace --release "$@"
