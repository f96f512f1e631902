# Shared by bench/run.sh and bench/gateway.sh (sourced): tool checks, the release build, a work folder
# cleaned up on exit, and small helpers.
# Before sourcing, set TOOLS (the commands the script needs) and WORK_PREFIX.

here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
top=$(cd "$here/.." && pwd)

for tool in $TOOLS; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $TOOLS; basenc is in coreutils)" >&2; exit 2; }
done

echo "building ocigate (release)..." >&2
cargo build --release --quiet -p gateway --manifest-path "$top/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$top/Cargo.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ocigate="$target/release/ocigate"

work=$(mktemp -d "/tmp/$WORK_PREFIX.XXXXXX")
chmod 755 "$work" # nginx workers run as another user
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/nginx*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# push_blob BASE REPO FILE [HEADER]: POST, then one streamed PUT (curl -T does not load the file in memory);
# prints the PUT's time in seconds.
push_blob() {
  local base=$1 repo=$2 file=$3 digest loc sep
  digest=sha256:$(sha256sum "$file" | cut -d' ' -f1)
  loc=$(curl -sf -D - -o /dev/null -X POST ${4:+-H "$4"} "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case $loc in http*) ;; *) loc=$base$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sf -o /dev/null -w '%{time_total}' -X PUT ${4:+-H "$4"} -H 'Content-Type: application/octet-stream' -T "$file" "$loc${sep}digest=$digest"
}

# CPU ticks (user + system) of a process and its children (nginx's workers).
cpu_ticks() { cat "/proc/$1/stat" $(pgrep -P "$1" | sed 's|.*|/proc/&/stat|') | awk '{t += $14 + $15} END {print t}'; }
