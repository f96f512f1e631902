#!/usr/bin/env bash
# Load benchmark of the gateway: manifest GET through `ocigate serve` (bearer token verified, a policy with a
# CEL condition decided, every request) against Debian's nginx as a plain reverse proxy and as nginx +
# auth_request, all in front of the same upstream registry; blob throughput through each; ocigate's RSS.
# See bench/README.md.
#
#   bench/gateway.sh                # about 3 minutes after the release build
#   DURATION=5s bench/gateway.sh    # shorter load runs
#
# Needs: wrk, curl, nginx, openssl, python3 (apt-get install wrk curl nginx openssl python3).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
BLOB_MIB=${BLOB_MIB:-256}
TOOLS="wrk curl nginx openssl python3 basenc"
WORK_PREFIX=ocigate-gwbench
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "$1 did not start" >&2; exit 1; }
rss_mib() { awk -v k="$2" '$1==k":"{printf "%.1f", $2/1024}' "/proc/$1/status"; }
b64url() { basenc --base64url -w0 | tr -d '='; }

# --- the upstream registry and its content -------------------------------------------------------------
UP=$(free_port)
"$ocigate" registry serve --root "$work/upstream" --listen "127.0.0.1:$UP" --log-level warn 2>>"$work/upstream.log" &
pids+=($!)
wait_http "http://127.0.0.1:$UP/v2/"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$work/config.json"
head -c 4096 /dev/urandom >"$work/layer.bin"
cfg=sha256:$(sha256sum "$work/config.json" | cut -d' ' -f1)
lay=sha256:$(sha256sum "$work/layer.bin" | cut -d' ' -f1)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
  "$cfg" "$(stat -c%s "$work/config.json")" "$lay" "$(stat -c%s "$work/layer.bin")" >"$work/manifest.json"
U="http://127.0.0.1:$UP"
push_blob "$U" team-a/app "$work/config.json" >/dev/null
push_blob "$U" team-a/app "$work/layer.bin" >/dev/null
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$work/manifest.json" "$U/v2/team-a/app/manifests/v1"
head -c $((BLOB_MIB << 20)) /dev/urandom >"$work/blob"
BLOB=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)
push_blob "$U" team-a/app "$work/blob" >/dev/null
for i in 1 2 3; do head -c $((BLOB_MIB << 20)) /dev/urandom >"$work/put$i"; done

# --- a token issuer: an RSA key; the token carries a claim the policy's condition reads ------------------
openssl genrsa -out "$work/issuer.key" 2048 2>/dev/null
openssl rsa -in "$work/issuer.key" -pubout -out "$work/issuer.pub" 2>/dev/null
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
claims=$(printf '{"iss":"bench-issuer","sub":"ci-bot","aud":"ocigate","exp":%d,"iat":%d,"groups":["ci"],"env":"ci"}' $((now + 7200)) "$now" | b64url)
sig=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign "$work/issuer.key" -binary | b64url)
TOKEN="$header.$claims.$sig"
AUTH="Authorization: Bearer $TOKEN"

cat >"$work/policy.yaml" <<'YML'
grants:
  - id: ci-pulls-and-pushes
    groups: [ci]
    repositories: ["team-a/**"]
    actions: [pull, push]
    when: principal.claims.env == "ci" && ip_in(client.ip, "127.0.0.0/8")
YML

# --- ocigate, twice: decision log off, and to a file ----------------------------------------------------
start_gateway() { # name decisions threads
  local port admin
  port=$(free_port); admin=$(free_port)
  cat >"$work/gw-$1.yaml" <<YML
listen: [{addr: "127.0.0.1:$port"}]
admin: {addr: "127.0.0.1:$admin"}
upstream: {url: "http://127.0.0.1:$UP"}
auth:
  issuers:
    - issuer: bench-issuer
      audiences: [ocigate]
      keys: [issuer.pub]
policy: {paths: [policy.yaml]}
log: {decisions: "$2"}
threads: $3
YML
  "$ocigate" serve --config "$work/gw-$1.yaml" --log-level warn 2>>"$work/gw-$1.log" &
  pids+=($!); GW_PID=$!; GW="http://127.0.0.1:$port"
  wait_http "http://127.0.0.1:$admin/healthz"; wait_http "$GW/v2/"
}

# --- nginx, twice: a plain reverse proxy, and with auth_request to an authorizer -------------------------
AP=$(free_port) # the authorizer: the cheapest possible one, a registry ping that answers 200 at once
"$ocigate" registry serve --root "$work/authorizer" --listen "127.0.0.1:$AP" --log-level warn 2>>"$work/authorizer.log" &
pids+=($!); AUTHZ_PID=$!
wait_http "http://127.0.0.1:$AP/v2/"
start_nginx() { # name auth(0|1)
  local port auth_conf=""
  port=$(free_port)
  if [ "$2" = 1 ]; then
    auth_conf="auth_request /_auth;"
  fi
  cat >"$work/nginx-$1.conf" <<NGX
worker_processes 2;
pid $work/nginx-$1.pid;
error_log $work/nginx-$1-error.log;
events { worker_connections 4096; }
http {
  access_log off; tcp_nodelay on; keepalive_requests 10000000;
  upstream registry { server 127.0.0.1:$UP; keepalive 64; }
  upstream authorizer { server 127.0.0.1:$AP; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    client_max_body_size 0; chunked_transfer_encoding on;
    location /v2/ {
      $auth_conf
      proxy_pass http://registry; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      # Streaming both ways with large buffers (nginx's defaults, 4-8 KiB and temp files, are much slower).
      proxy_request_buffering off; client_body_buffer_size 1m;
      proxy_buffering on; proxy_max_temp_file_size 0; proxy_buffer_size 64k; proxy_buffers 16 64k; proxy_busy_buffers_size 128k;
    }
    location = /_auth {
      internal;
      proxy_pass http://authorizer/v2/; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri; proxy_set_header X-Original-Method \$request_method;
    }
  }
}
NGX
  nginx -c "$work/nginx-$1.conf"
  for _ in $(seq 50); do [ -f "$work/nginx-$1.pid" ] && break; sleep 0.1; done
  NGINX_PID=$(cat "$work/nginx-$1.pid"); NGINX="http://127.0.0.1:$port"
  wait_http "$NGINX/v2/"
}

start_gateway ocigate off 2; OG=$GW; OG_PID=$GW_PID
start_gateway ocigate-1 off 1; O1=$GW; O1_PID=$GW_PID
start_gateway ocigate-log "$work/decisions.log" 2; OL=$GW; OL_PID=$GW_PID
start_nginx plain 0; NP=$NGINX; NP_PID=$NGINX_PID
start_nginx auth 1; NA=$NGINX; NA_PID=$NGINX_PID

# --- manifest GET under load ---------------------------------------------------------------------------
declare -A RPS P99 CPU GET PUT
load() { # name url pids...
  local name=$1 url=$2 out before=0 after=0 n p
  shift 2
  curl -sf -o /dev/null -H "$AUTH" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$url" || { echo "$name: $url failed" >&2; exit 1; }
  for p in "$@"; do before=$((before + $(cpu_ticks "$p"))); done
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "$AUTH" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$url")
  for p in "$@"; do after=$((after + $(cpu_ticks "$p"))); done
  if grep -q 'Non-2xx' <<<"$out"; then echo "$name: non-2xx answers under load" >&2; echo "$out" >&2; exit 1; fi
  RPS[$name]=$(awk '/Requests\/sec/{printf "%.0f", $2}' <<<"$out")
  P99[$name]=$(awk '$1=="99%"{print $2}' <<<"$out")
  n=$(awk '/requests in/{print $1}' <<<"$out")
  CPU[$name]=$(awk -v t=$((after - before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", t/hz*1e6/n}')
}
M=/v2/team-a/app/manifests/v1
echo "manifest GET, $CONNECTIONS connections, $DURATION each..." >&2
load ocigate "$OG$M" "$OG_PID"
load ocigate-1 "$O1$M" "$O1_PID"
load ocigate-log "$OL$M" "$OL_PID"
load nginx "$NP$M" "$NP_PID"
load nginx-auth "$NA$M" "$NA_PID" "$AUTHZ_PID"
IDLE_RSS=$(rss_mib "$OG_PID" VmRSS)
HWM_BEFORE=$(rss_mib "$OG_PID" VmHWM)

# --- blobs ---------------------------------------------------------------------------------------------
blobs() { # name base
  local best_get=999 best_put=999 t i
  for i in 1 2 3; do
    t=$(curl -sf -o /dev/null -w '%{time_total}' -H "$AUTH" "$2/v2/team-a/app/blobs/$BLOB")
    best_get=$(awk -v a="$best_get" -v b="$t" 'BEGIN{print (b<a)?b:a}')
    t=$(push_blob "$2" "team-a/put-$1-$i" "$work/put$i" "$AUTH")
    best_put=$(awk -v a="$best_put" -v b="$t" 'BEGIN{print (b<a)?b:a}')
  done
  GET[$1]=$(awk -v t="$best_get" -v m="$BLOB_MIB" 'BEGIN{printf "%.0f", m/t}')
  PUT[$1]=$(awk -v t="$best_put" -v m="$BLOB_MIB" 'BEGIN{printf "%.0f", m/t}')
}
echo "blob GET and PUT of $BLOB_MIB MiB, best of 3..." >&2
sync
blobs upstream "$U"
blobs ocigate "$OG"
blobs nginx "$NP"
HWM_AFTER=$(rss_mib "$OG_PID" VmHWM)

# --- report --------------------------------------------------------------------------------------------
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain 2>/dev/null | grep -q . && echo "+changes" || true)
echo
echo "commit $commit$dirty, $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNECTIONS -d$DURATION (load generator on the same cores)"
echo
echo "| manifest GET through | req/s | p99 | proxy CPU per request |"
echo "|---|---|---|---|"
echo "| ocigate, 2 threads (bearer JWT + policy with a CEL condition), decision log off | ${RPS[ocigate]} | ${P99[ocigate]} | ${CPU[ocigate]} us |"
echo "| ocigate, the same on 1 thread | ${RPS[ocigate-1]} | ${P99[ocigate-1]} | ${CPU[ocigate-1]} us |"
echo "| ocigate, 2 threads, a decision line per request to a file | ${RPS[ocigate-log]} | ${P99[ocigate-log]} | ${CPU[ocigate-log]} us |"
echo "| nginx, plain reverse proxy (no authentication) | ${RPS[nginx]} | ${P99[nginx]} | ${CPU[nginx]} us |"
echo "| nginx + auth_request (authorizer answering 200 at once; its CPU counted) | ${RPS[nginx-auth]} | ${P99[nginx-auth]} | ${CPU[nginx-auth]} us |"
echo
echo "| ${BLOB_MIB} MiB blob | GET | PUT |"
echo "|---|---|---|"
for n in upstream ocigate nginx; do echo "| $n | ${GET[$n]} MiB/s | ${PUT[$n]} MiB/s |"; done
echo
awk -v o="${CPU[ocigate]}" -v o1="${CPU[ocigate-1]}" -v n="${CPU[nginx]}" -v a="${CPU[nginx-auth]}" \
  'BEGIN{printf "ocigate CPU per request: %.2fx (1 thread: %.2fx) nginx plain, %.2fx nginx + auth_request\n", o/n, o1/n, o/a}'
awk -v og="${GET[ocigate]}" -v ng="${GET[nginx]}" -v op="${PUT[ocigate]}" -v np="${PUT[nginx]}" 'BEGIN{printf "ocigate blob throughput: GET %.0f%%, PUT %.0f%% of nginx\n", 100*og/ng, 100*op/np}'
echo "ocigate RSS: ${IDLE_RSS} MiB after the load runs; peak ${HWM_BEFORE} MiB before the blobs, ${HWM_AFTER} MiB after $((6 * BLOB_MIB)) MiB of blobs"
