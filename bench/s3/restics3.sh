# restic's S3 backend to the same Garage (bench/s3/garage-up.sh first); the
# anchors' restic settings (repository v2, compression auto).
source "${BENCH:-/var/tmp/bench}/s3.env"
export RESTIC_CACHE_DIR=$CACHE
url() { echo "s3:http://127.0.0.1:3900/bench/restic-$(basename "$1")"; }
restics3_version() { restic version | cut -d' ' -f1-2; }
restics3_init()    { restic -r "$(url "$1")" init --repository-version 2; }
restics3_backup()  { cd "$2" && restic -r "$(url "$1")" backup --compression auto --tag "$3" .; }
restics3_restore() { restic -r "$(url "$1")" restore latest --target "$2"; }
