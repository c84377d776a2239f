#!/usr/bin/env bash
# Starts a single-node Garage on loopback for the S3 benchmark (data under
# $BENCH/garage, S3 on 127.0.0.1:3900, no compression, 10 MiB blocks), a
# bucket `bench` and a key, and `strata server` (state under $BENCH/server,
# datastore `main` on that bucket, on 127.0.0.1:8443); writes the client
# environment to $BENCH/s3.env. Stop with garage-down.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-/var/tmp/bench}
GARAGE=${STRATA_GARAGE_BIN:-$("$HERE/../../scripts/garage.sh")}
STRATA=${STRATA_BIN:-$HERE/../../target/release/strata}
D=$BENCH/garage
rm -rf "$D" "$BENCH/server"; mkdir -p "$D"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$D/garage.toml" <<CONF
metadata_dir = "$D/meta"
data_dir = "$D/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
block_size = "10M"
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$secret"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:3903"
admin_token = "$secret"
CONF
g() { "$GARAGE" -c "$D/garage.toml" "$@"; }
nohup "$GARAGE" -c "$D/garage.toml" server > "$D/garage.log" 2>&1 &
echo $! > "$D/pid"
for _ in $(seq 100); do g status > /dev/null 2>&1 && break; sleep 0.2; done
id=$(g status | awk '/^[0-9a-f]{16} / {print $1; exit}')
g layout assign -z dc1 -c 10G "$id" > /dev/null
g layout apply --version 1 > /dev/null
g bucket create bench > /dev/null
key=$(g key create bench)
kid=$(echo "$key" | awk -F': *' '/Key ID/ {print $2}')
ksec=$(echo "$key" | awk -F': *' '/Secret key/ {print $2}')
g bucket allow --read --write --owner bench --key bench > /dev/null
export AWS_ACCESS_KEY_ID=$kid AWS_SECRET_ACCESS_KEY=$ksec AWS_DEFAULT_REGION=garage
mkdir -p "$BENCH/server"
nohup "$STRATA" server serve --state-dir "$BENCH/server" --listen 127.0.0.1:8443 \
  --datastore main=s3:http://127.0.0.1:3900/bench/srv > "$BENCH/server/out.log" 2> "$BENCH/server/err.log" &
echo $! > "$BENCH/server/pid"
for _ in $(seq 100); do grep -q '^fingerprint' "$BENCH/server/out.log" 2>/dev/null && break; sleep 0.1; done
fp=$(sed -n 's/^fingerprint sha256://p' "$BENCH/server/out.log")
"$STRATA" server token add --state-dir "$BENCH/server" --role backup --datastore main \
  --namespace bench 2>/dev/null > "$BENCH/server/token"
cat > "$BENCH/s3.env" <<ENV
export AWS_ACCESS_KEY_ID=$kid AWS_SECRET_ACCESS_KEY=$ksec AWS_DEFAULT_REGION=garage
export STRATA_SERVER_FINGERPRINT=$fp STRATA_SERVER_TOKEN_FILE=$BENCH/server/token
ENV
echo "garage on 127.0.0.1:3900, strata server on 127.0.0.1:8443 (sha256:$fp); env in $BENCH/s3.env"
