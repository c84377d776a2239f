# strata straight to Garage (bench/s3/garage-up.sh first); see ../strata.sh.
STRATA=${STRATA_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/strata}
export STRATA_PASSWORD=$BENCH_PASSWORD STRATA_CACHE_DIR=$CACHE
source "${BENCH:-/var/tmp/bench}/s3.env"
url() { echo "s3:http://127.0.0.1:3900/bench/direct-$(basename "$1")"; }
stratas3_version() { "$STRATA" --version; }
stratas3_init()    { "$STRATA" init --repo "$(url "$1")" --quiet; }
stratas3_backup()  { cd "$2" && "$STRATA" backup --repo "$(url "$1")" --tag "$3" --quiet .; }
stratas3_restore() { "$STRATA" restore --repo "$(url "$1")" latest --target "$2" --quiet; }
