#!/usr/bin/env bash
# Run the built serve image here and check it: deploy/check-image.sh serve [IMAGE] [--answers FILE]
#
# Starts the REST API (on a loopback port, with an API key and a fresh volume) and the app from the image, waits for
# their health endpoints, classifies one example film through the API from outside the container, checks the user
# is not root and that TensorFlow cannot be imported inside, and prints one JSON line:
#   {"image": ..., "size_mb": ..., "user": ..., "tensorflow": false, "readyz": 200, "app_health": 200,
#    "label": ..., "start_to_ready_s": ...}
# With --answers FILE, the API's answer for every film in examples/ is written to FILE (to compare with the CLI's).
# Exits non-zero when any check fails. Uses Docker when a daemon answers, else buildah (as deploy/build-image.sh).
set -euo pipefail
target=${1:-}
answers=""
image_arg=""
shift || true
while (($#)); do
  case $1 in
    --answers) answers=${2:?--answers needs a file}; shift 2 ;;
    *) image_arg=$1; shift ;;
  esac
done
if [[ $target != serve ]]; then
  echo "usage: deploy/check-image.sh serve [IMAGE] [--answers FILE]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
film=examples/pneumonia_person1042_virus_1737.jpeg
key=check-$RANDOM$RANDOM
free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
api_port=$(free_port)
app_port=$(free_port)
volume=$(mktemp -d /tmp/pneumo-volume.XXXXXX)
chmod 777 "$volume"  # the image's user (uid 10001) writes its state there
pids=()
names=()

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  image=${image_arg:-pneumo:$target}
  start() {  # start NAME PORT_ENV PORT MODE
    docker run -d --rm --name "$1" --network host -v "$volume:/data" -e PNEUMO_HOST=127.0.0.1 -e "$2=$3" \
      -e PNEUMO_API_KEYS="$key" "$image" "$4" >/dev/null
    names+=("$1")
  }
  inside() { docker run --rm --entrypoint "" "$image" "$@"; }
  image_bytes() { docker image inspect --format '{{.Size}}' "$image"; }
  cleanup() { for name in "${names[@]}"; do docker rm -f "$name" >/dev/null 2>&1 || true; done; rm -rf "$volume"; }
else
  bah=(buildah --storage-driver vfs)
  image=${image_arg:-localhost/pneumo:$target}
  start() {  # start NAME PORT_ENV PORT MODE; buildah's chroot isolation shares the host's network
    "${bah[@]}" from -q --name "$1" "containers-storage:$image" >/dev/null
    names+=("$1")
    "${bah[@]}" run --isolation chroot -v "$volume:/data" --env PNEUMO_HOST=127.0.0.1 --env "$2=$3" \
      --env PNEUMO_API_KEYS="$key" "$1" -- /app/deploy/entrypoint.sh "$4" >"$volume/$1.log" 2>&1 &
    pids+=($!)
  }
  inside() { "${bah[@]}" run --isolation chroot "${names[0]}" -- "$@"; }
  image_bytes() { du -sb "$("${bah[@]}" mount "${names[0]}")" | cut -f1; }  # unpacked, as Docker counts it
  cleanup() {
    for pid in "${pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
    # the servers run as children of buildah's chroot helper: stop whatever still listens on the two ports
    for port in "$api_port" "$app_port"; do fuser -k -TERM "$port/tcp" >/dev/null 2>&1 || true; done
    wait 2>/dev/null || true
    for name in "${names[@]}"; do "${bah[@]}" rm "$name" >/dev/null 2>&1 || true; done
    rm -rf "$volume"
  }
fi
trap cleanup EXIT

wait_for() {  # wait_for URL SECONDS: prints the last HTTP status
  local status=000
  for _ in $(seq 1 "$2"); do
    status=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [[ $status == 200 ]] && break
    sleep 1
  done
  echo "$status"
}

started=$(date +%s.%N)
start "pneumo-check-api-$$" PNEUMO_API_PORT "$api_port" api
readyz=$(wait_for "http://127.0.0.1:$api_port/readyz" 180)
ready_s=$(python3 -c "import time; print(round(time.time() - $started, 1))")
start "pneumo-check-app-$$" PNEUMO_APP_PORT "$app_port" app
app_health=$(wait_for "http://127.0.0.1:$app_port/_stcore/health" 180)
label=$(curl -s -H "Authorization: Bearer $key" -F "files=@$film" "http://127.0.0.1:$api_port/v1/predict" \
  | python3 -c "import json, sys; print(json.load(sys.stdin)['results'][0].get('label', 'none'))" || echo none)
if [[ -n $answers ]]; then
  films=()
  for film_file in examples/*.jpeg; do films+=(-F "files=@$film_file"); done
  curl -s -H "Authorization: Bearer $key" "${films[@]}" "http://127.0.0.1:$api_port/v1/predict" >"$answers"
fi
user=$(inside id -un)
size=$(image_bytes)
if inside python3 -c "import tensorflow" >/dev/null 2>&1; then tensorflow=true; else tensorflow=false; fi

python3 - "$image" "$size" "$user" "$tensorflow" "$readyz" "$app_health" "$label" "$ready_s" <<'PY'
import json
import sys

image, size, user, tensorflow, readyz, app_health, label, ready_s = sys.argv[1:]
line = {
    "image": image,
    "size_mb": round(int(size) / 2**20),
    "user": user,
    "tensorflow": tensorflow == "true",
    "readyz": int(readyz),
    "app_health": int(app_health),
    "label": label,
    "start_to_ready_s": float(ready_s),
}
print(json.dumps(line))
ok = user != "root" and not line["tensorflow"] and line["readyz"] == 200 and line["app_health"] == 200
sys.exit(0 if ok and label in ("NORMAL", "PNEUMONIA") else 1)
PY
