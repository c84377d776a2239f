#!/usr/bin/env bash
# Builds Garage (the S3 store the tests run against) once and caches it
# outside the clone: prints the binary's path. Rebuilt only when missing.
#   STRATA_GARAGE_CACHE  cache root (default ~/.cache/strata-test)
set -euo pipefail
VERSION=${GARAGE_VERSION:-2.5.0}
ROOT=${STRATA_GARAGE_CACHE:-$HOME/.cache/strata-test}/garage-$VERSION
BIN=$ROOT/bin/garage
if [ ! -x "$BIN" ]; then
  echo "building garage $VERSION into $ROOT (once; takes a while on a cold machine)" >&2
  # sqlite metadata only: no lmdb, k2v or metrics features (a shorter build)
  cargo install garage --version "$VERSION" --locked --root "$ROOT" \
    --no-default-features --features bundled-libs,sqlite >&2
fi
echo "$BIN"
