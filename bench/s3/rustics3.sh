# rustic's S3 backend (OpenDAL) to the same Garage (bench/s3/garage-up.sh
# first); rustic's defaults (repository v2, zstd level 3). The repository
# options live in a profile written per repository (rustic reads S3 options
# from profiles, not from the command line).
source "${BENCH:-/var/tmp/bench}/s3.env"
RUSTIC=${RUSTIC_BIN:-$(command -v rustic || echo "$HOME/.cache/strata-bench/rustic/bin/rustic")}
rustic_profile() {
  local n; n=rustic-$(basename "$1")
  mkdir -p "$HOME/.config/rustic"
  cat > "$HOME/.config/rustic/bench-$n.toml" <<PROFILE
[repository]
repository = "opendal:s3"
password = "$BENCH_PASSWORD"
cache-dir = "$CACHE"
[repository.options]
bucket = "bench"
root = "/$n"
endpoint = "http://127.0.0.1:3900"
region = "garage"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
PROFILE
  echo "bench-$n"
}
rustics3_version() { "$RUSTIC" --version; }
rustics3_init()    { "$RUSTIC" -P "$(rustic_profile "$1")" --no-progress init; }
rustics3_backup()  { cd "$2" && "$RUSTIC" -P "$(rustic_profile "$1")" --no-progress backup --tag "$3" .; }
rustics3_restore() { "$RUSTIC" -P "$(rustic_profile "$1")" --no-progress restore latest "$2"; }
