#!/usr/bin/env bash
# Builds the portable strata binary: x86_64 Linux, glibc 2.17 or newer and
# nothing else (no OpenSSL, no libsqlite, no libzstd: all linked in), via
# cargo-zigbuild with Zig from PyPI. Leaves it at target/portable/strata.
# Zig and cargo-zigbuild are installed once into ~/.cache/strata-build.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${STRATA_BUILD_TOOLS:-$HOME/.cache/strata-build}"
mkdir -p "$tools"
if [ ! -x "$tools/zig-venv/bin/python" ] || ! "$tools/zig-venv/bin/python" -m ziglang version >/dev/null 2>&1; then
  echo "build-portable: installing Zig (PyPI ziglang) into $tools/zig-venv" >&2
  python3 -m venv "$tools/zig-venv"
  "$tools/zig-venv/bin/pip" install -q 'ziglang>=0.13'
fi
if [ ! -x "$tools/bin/cargo-zigbuild" ]; then
  echo "build-portable: installing cargo-zigbuild into $tools" >&2
  cargo install -q --locked --root "$tools" cargo-zigbuild
fi
# cargo-zigbuild runs `python3 -m ziglang` when no `zig` is on PATH: the
# venv's python3 comes first.
export PATH="$tools/bin:$tools/zig-venv/bin:$PATH"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi
export STRATA_COMMIT="${STRATA_COMMIT:-$commit}"
target=x86_64-unknown-linux-gnu
cargo zigbuild --profile dist -p strata-cli --target "$target.2.17"
mkdir -p target/portable
install -m 0755 "target/$target/dist/strata" target/portable/strata.new
mv target/portable/strata.new target/portable/strata
echo "target/portable/strata: $(target/portable/strata --version)" >&2
