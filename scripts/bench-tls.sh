#!/usr/bin/env bash
# The cost of TLS and SASL_SSL: one `rivulet broker` with PLAINTEXT, SSL and SASL_SSL listeners
# (certificates made here with openssl, a SCRAM-SHA-512 user added offline), then
# `rivulet bench produce` and `rivulet bench consume` (librdkafka client) against each listener,
# same topic settings. Prints each bench's JSON line; docs/BENCHMARKS.md records the figures.
#
#   scripts/bench-tls.sh [RIVULET_BIN] [COUNT]      (defaults: target/release/rivulet, 2000000)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/rivulet}"
COUNT="${2:-2000000}"
WORK="$(mktemp -d /tmp/rivulet-bench-tls.XXXXXX)"
BROKER_PID=""
cleanup() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID"
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
echo "subjectAltName=IP:127.0.0.1,DNS:localhost" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile server.ext 2>/dev/null
PASSWORD="$(openssl rand -hex 16)"
echo "$PASSWORD" | "$BIN" users add bench --mechanism SCRAM-SHA-512 --password-stdin --data-dir data >/dev/null

"$BIN" broker --data-dir data --fsync 100ms --super-users User:bench \
    --listeners PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0 \
    --tls-cert server.pem --tls-key server.key >broker.out 2>broker.log &
BROKER_PID=$!
for _ in $(seq 1 100); do
    [ "$(grep -c 'listening on' broker.out || true)" -ge 3 ] && break
    sleep 0.1
done
mapfile -t ADDRS < <(sed -n 's/^rivulet broker listening on //p' broker.out)
[ "${#ADDRS[@]}" -ge 3 ] || { echo "broker did not start"; cat broker.log; exit 1; }

cat > ssl.properties <<EOF
security.protocol=SSL
ssl.ca.location=$WORK/ca.pem
EOF
cat > sasl_ssl.properties <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=bench
sasl.password=\${RIVULET_BENCH_PASSWORD}
ssl.ca.location=$WORK/ca.pem
EOF
export RIVULET_BENCH_PASSWORD="$PASSWORD"

run() { # name addr [props file]
    local name="$1" addr="$2" props=()
    [ $# -ge 3 ] && props=(--client-config-file "$3")
    for mode in produce consume; do
        echo "== $name $mode"
        "$BIN" bench "$mode" --brokers "$addr" "${props[@]}" --client librdkafka \
            --topic "tls-$name" --partitions 4 --count "$COUNT" --size 100 2>/dev/null | tail -1
    done
}
run plaintext "${ADDRS[0]}"
run ssl "${ADDRS[1]}" "$WORK/ssl.properties"
run sasl_ssl "${ADDRS[2]}" "$WORK/sasl_ssl.properties"
