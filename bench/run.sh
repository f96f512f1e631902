#!/usr/bin/env bash
# Load benchmark: ocigate's bundled registry against CNCF distribution (Debian's docker-registry) and nginx
# serving the same manifest as a static file, on this machine, in one run. See bench/README.md.
#
#   bench/run.sh                 # everything (about 3 minutes)
#   DURATION=5s bench/run.sh     # shorter load runs
#
# Needs: wrk, curl, nginx, docker-registry, python3 (apt-get install wrk curl nginx docker-registry).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
BLOB_MIB=${BLOB_MIB:-256}
BIG_MIB=${BIG_MIB:-1024}
TOOLS="wrk curl nginx docker-registry python3"
WORK_PREFIX=ocigate-bench
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

wait_up() { for _ in $(seq 100); do curl -sf "$1/v2/" >/dev/null && return 0; sleep 0.1; done; echo "$1 did not start" >&2; exit 1; }

start_ocigate() { # root port
  "$ocigate" registry serve --root "$1" --listen "127.0.0.1:$2" --log-level warn 2>>"$work/ocigate.log" &
  pids+=($!); OCIGATE_PID=$!; wait_up "http://127.0.0.1:$2"
}
start_distribution() { # root port
  cat >"$work/dist-$2.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $1 }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$2 }
YML
  docker-registry serve "$work/dist-$2.yml" 2>>"$work/distribution.log" &
  pids+=($!); DIST_PID=$!; wait_up "http://127.0.0.1:$2"
}

peak_rss_mib() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$1/status"; }

# --- content -----------------------------------------------------------------------------------------
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$work/config.json"
head -c 4096 /dev/urandom >"$work/layer.bin"
cfg=sha256:$(sha256sum "$work/config.json" | cut -d' ' -f1)
lay=sha256:$(sha256sum "$work/layer.bin" | cut -d' ' -f1)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
  "$cfg" "$(stat -c%s "$work/config.json")" "$lay" "$(stat -c%s "$work/layer.bin")" >"$work/manifest.json"
# Three different blobs, so no PUT is answered by deduplication.
for i in 1 2 3; do head -c $((BLOB_MIB << 20)) /dev/urandom >"$work/blob$i"; done

# --- servers -----------------------------------------------------------------------------------------
OP=$(free_port); start_ocigate "$work/ocigate-root" "$OP"; O_PID=$OCIGATE_PID
DP=$(free_port); start_distribution "$work/dist-root" "$DP"; D_PID=$DIST_PID
NP=$(free_port)
mkdir -p "$work/www/v2/bench/app/manifests"
cp "$work/manifest.json" "$work/www/v2/bench/app/manifests/v1"
cat >"$work/nginx.conf" <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nodelay on; keepalive_requests 10000000;
  server { listen 127.0.0.1:$NP; root $work/www;
    location /v2/ { default_type application/vnd.oci.image.manifest.v1+json; } }
}
NGX
nginx -c "$work/nginx.conf"
for _ in $(seq 50); do [ -f "$work/nginx.pid" ] && break; sleep 0.1; done

for base in "http://127.0.0.1:$OP" "http://127.0.0.1:$DP"; do
  push_blob "$base" bench/app "$work/config.json" >/dev/null
  push_blob "$base" bench/app "$work/layer.bin" >/dev/null
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @"$work/manifest.json" "$base/v2/bench/app/manifests/v1"
done

# --- manifest GET under load ---------------------------------------------------------------------------
declare -A RPS P99 CPU
load() { # name url pid
  local out before after n
  curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$2"
  before=$(cpu_ticks "$3")
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$2")
  after=$(cpu_ticks "$3")
  RPS[$1]=$(awk '/Requests\/sec/{printf "%.0f", $2}' <<<"$out")
  P99[$1]=$(awk '$1=="99%"{print $2}' <<<"$out")
  n=$(awk '/requests in/{print $1}' <<<"$out")
  CPU[$1]=$(awk -v t=$((after - before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", t/hz*1e6/n}')
}
echo "manifest GET, $CONNECTIONS connections, $DURATION each..." >&2
load ocigate "http://127.0.0.1:$OP/v2/bench/app/manifests/v1" "$O_PID"
load distribution "http://127.0.0.1:$DP/v2/bench/app/manifests/v1" "$D_PID"
load nginx "http://127.0.0.1:$NP/v2/bench/app/manifests/v1" "$(cat "$work/nginx.pid")"

# --- blob PUT and GET ----------------------------------------------------------------------------------
declare -A PUT GET
blobs() { # name base
  local best_put=999 best_get=999 t
  for i in 1 2 3; do
    t=$(push_blob "$2" "bench/blob$i" "$work/blob$i")
    best_put=$(awk -v a="$best_put" -v b="$t" 'BEGIN{print (b<a)?b:a}')
    t=$(curl -sf -o /dev/null -w '%{time_total}' "$2/v2/bench/blob$i/blobs/sha256:$(sha256sum "$work/blob$i" | cut -d' ' -f1)")
    best_get=$(awk -v a="$best_get" -v b="$t" 'BEGIN{print (b<a)?b:a}')
  done
  PUT[$1]=$(awk -v t="$best_put" -v m="$BLOB_MIB" 'BEGIN{printf "%.0f", m/t}')
  GET[$1]=$(awk -v t="$best_get" -v m="$BLOB_MIB" 'BEGIN{printf "%.0f", m/t}')
}
echo "blob PUT/GET of $BLOB_MIB MiB, best of 3..." >&2
sync # the test files just written must not be flushing while a registry fsyncs
blobs ocigate "http://127.0.0.1:$OP"
blobs distribution "http://127.0.0.1:$DP"

# --- peak RSS during a large push, on fresh processes ----------------------------------------------------
declare -A RSS IDLE
echo "peak RSS while pushing $BIG_MIB MiB..." >&2
head -c $((BIG_MIB << 20)) /dev/urandom >"$work/big"
rm -f "$work"/blob[123]
P=$(free_port); start_ocigate "$work/ocigate-rss" "$P"
IDLE[ocigate]=$(peak_rss_mib "$OCIGATE_PID"); push_blob "http://127.0.0.1:$P" rss/big "$work/big" >/dev/null
curl -sf -o /dev/null "http://127.0.0.1:$P/v2/rss/big/blobs/sha256:$(sha256sum "$work/big" | cut -d' ' -f1)"
RSS[ocigate]=$(peak_rss_mib "$OCIGATE_PID")
P=$(free_port); start_distribution "$work/dist-rss" "$P"
IDLE[distribution]=$(peak_rss_mib "$DIST_PID"); push_blob "http://127.0.0.1:$P" rss/big "$work/big" >/dev/null
curl -sf -o /dev/null "http://127.0.0.1:$P/v2/rss/big/blobs/sha256:$(sha256sum "$work/big" | cut -d' ' -f1)"
RSS[distribution]=$(peak_rss_mib "$DIST_PID")

# --- report --------------------------------------------------------------------------------------------
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain 2>/dev/null | grep -q . && echo "+changes" || true)
echo
echo "commit $commit$dirty, $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNECTIONS -d$DURATION (load generator on the same cores)"
echo
echo "| | manifest GET req/s | p99 | CPU per GET | blob PUT ${BLOB_MIB} MiB | blob GET ${BLOB_MIB} MiB | peak RSS, ${BIG_MIB} MiB push + pull |"
echo "|---|---|---|---|---|---|---|"
for n in ocigate distribution; do
  echo "| $n | ${RPS[$n]} | ${P99[$n]} | ${CPU[$n]} us | ${PUT[$n]} MiB/s | ${GET[$n]} MiB/s | ${RSS[$n]} MiB (idle ${IDLE[$n]}) |"
done
echo "| nginx (static file) | ${RPS[nginx]} | ${P99[nginx]} | ${CPU[nginx]} us | | | |"
echo
awk -v o="${RPS[ocigate]}" -v d="${RPS[distribution]}" -v n="${RPS[nginx]}" \
  'BEGIN{printf "ocigate manifest GET: %.1fx distribution, %.2fx nginx static\n", o/d, o/n}'
awk -v o="${PUT[ocigate]}" -v d="${PUT[distribution]}" -v og="${GET[ocigate]}" -v dg="${GET[distribution]}" \
  'BEGIN{printf "ocigate blob throughput: PUT %.1fx, GET %.1fx distribution\n", o/d, og/dg}'
