# strata hooks - sourced by ../shared/bench/run-anchors.sh with $CACHE set; see its README.
# Settings comparable to the anchors: authenticated encryption always on (XChaCha20-Poly1305,
# keyed BLAKE3 blob IDs, argon2id key wrapping), zstd level 3, content-defined chunks of
# 512 KiB-8 MiB (1 MiB average), 16 MiB data packs, fsync on every pack and index write.
# strata keeps no local cache; $CACHE stays empty.
# Binary: target/release/strata next to this folder (build with `cargo build --release`).
STRATA=${STRATA_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/strata}
export STRATA_PASSWORD=$BENCH_PASSWORD
strata_version() { "$STRATA" --version; }
strata_init()    { "$STRATA" init --repo "$1" --quiet; }
strata_backup()  { cd "$2" && "$STRATA" backup --repo "$1" --tag "$3" --quiet .; }
strata_restore() { "$STRATA" restore --repo "$1" latest --target "$2" --quiet; }
