# strata through `strata server` on Garage (bench/s3/garage-up.sh first).
STRATA=${STRATA_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/strata}
export STRATA_PASSWORD=$BENCH_PASSWORD STRATA_CACHE_DIR=$CACHE
source "${BENCH:-/var/tmp/bench}/s3.env"
stratasrv_version() { "$STRATA" --version; }
stratasrv_init()    { "$STRATA" init --repo strata://127.0.0.1:8443/main/bench --quiet; }
stratasrv_backup()  { cd "$2" && "$STRATA" backup --repo strata://127.0.0.1:8443/main/bench --tag "$3" --quiet .; }
stratasrv_restore() { "$STRATA" restore --repo strata://127.0.0.1:8443/main/bench latest --target "$2" --quiet; }
