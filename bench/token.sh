#!/usr/bin/env bash
# Load benchmark of the built-in token service: GET /token under wrk, anonymously and with Basic
# credentials (bcrypt cached after the first request), signing with ES256, EdDSA and RS256 keys.
# See bench/README.md.
#
#   bench/token.sh                  # about a minute after the release build
#   DURATION=5s bench/token.sh
#
# Needs: wrk, curl, python3 (apt-get install wrk curl python3).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
TOOLS="wrk curl python3"
WORK_PREFIX=ocigate-tokenbench
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "$1 did not start" >&2; exit 1; }

echo "alice-pw" | "$ocigate" passwd alice >"$work/htpasswd"
cat >"$work/policy.yaml" <<'YML'
grants:
  - id: team-a
    users: [alice]
    repositories: ["team-a/**"]
    actions: [pull, push]
  - id: library
    anonymous: true
    repositories: ["library/**"]
    actions: [pull]
YML

declare -A RPS P99 CPU
run() { # name alg
  local port admin out before after n
  "$ocigate" token keygen --algorithm "$2" -o "$work/$2.pem" 2>/dev/null
  port=$(free_port); admin=$(free_port)
  cat >"$work/gw-$2.yaml" <<YML
listen: [{addr: "127.0.0.1:$port"}]
admin: {addr: "127.0.0.1:$admin"}
upstream: {bundled: {root: data-$2}}
auth:
  anonymous: true
  htpasswd: htpasswd
  token_service: {service: registry.bench, keys: [$2.pem]}
policy: {paths: [policy.yaml]}
log: {decisions: "off"}
threads: 2
YML
  "$ocigate" serve --config "$work/gw-$2.yaml" --log-level warn 2>>"$work/gw-$2.log" &
  pids+=($!); local pid=$!
  wait_http "http://127.0.0.1:$admin/healthz"
  local base="http://127.0.0.1:$port/token?service=registry.bench"
  for who in anonymous alice; do
    local url hdr=()
    if [ "$who" = alice ]; then
      url="$base&scope=repository:team-a/app:pull,push&account=alice"
      hdr=(-H "Authorization: Basic $(printf 'alice:alice-pw' | base64 -w0)")
    else
      url="$base&scope=repository:library/app:pull"
    fi
    curl -sf -o /dev/null "${hdr[@]}" "$url" || { echo "$url failed" >&2; exit 1; }
    before=$(cpu_ticks "$pid")
    out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "${hdr[@]}" "$url")
    after=$(cpu_ticks "$pid")
    if grep -q 'Non-2xx' <<<"$out"; then echo "$2 $who: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
    local name="$2 $who"
    RPS[$name]=$(awk '/Requests\/sec/{printf "%.0f", $2}' <<<"$out")
    P99[$name]=$(awk '$1=="99%"{print $2}' <<<"$out")
    n=$(awk '/requests in/{print $1}' <<<"$out")
    CPU[$name]=$(awk -v t=$((after - before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", t/hz*1e6/n}')
  done
}
for alg in ES256 EdDSA RS256; do run "$alg" "$alg"; done

commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "commit $commit, $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNECTIONS -d$DURATION (load generator on the same cores)"
printf '| %-16s | %8s | %8s | %14s |\n' "GET /token" "req/s" "p99" "CPU µs/request"
printf '|%s|%s|%s|%s|\n' "------------------" "----------" "----------" "----------------"
for alg in ES256 EdDSA RS256; do
  for who in anonymous alice; do
    name="$alg $who"
    printf '| %-16s | %8s | %8s | %14s |\n' "$name" "${RPS[$name]}" "${P99[$name]}" "${CPU[$name]}"
  done
done
