#!/bin/sh
# Build the image and run it once: it must migrate its database, answer /readyz and analyse a
# song. Uses the host's network (no port mapping or iptables needed) on PORT (5077).
#   scripts/container_check.sh [base-image]
# base-image: python:3.11-slim from a registry, or selah-base:bookworm from
# scripts/build_base_image.sh where no registry is reachable (the default). TORCH_FIND_LINKS: a
# page of wheels holding torch-<version>+cpu, where PyTorch's index is out of reach (for instance
# `python3 -m http.server 8765 -d /opt/wheels` and http://127.0.0.1:8765/).
set -eu
BASE=${1:-selah-base:bookworm}
PORT=${PORT:-5077}
NAME=selah-check-$$
cd "$(dirname "$0")/.."
started=$(date +%s)
docker build --network host --build-arg BASE_IMAGE="$BASE" \
    ${TORCH_FIND_LINKS:+--build-arg TORCH_FIND_LINKS="$TORCH_FIND_LINKS"} -t selah:check .
echo "built in $(( $(date +%s) - started )) s; size $(docker images selah:check --format '{{.Size}}')"
docker run -d --name "$NAME" --network host -e PORT="$PORT" selah:check >/dev/null
trap 'docker rm -f "$NAME" >/dev/null' EXIT
for _ in $(seq 120); do
    if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
    sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/readyz"; echo
curl -fsS -X POST "http://127.0.0.1:$PORT/api/analyze" -H 'Content-Type: application/json' \
    -d '{"title": "Morning Light", "artist": "Test Choir", "lyrics": "Great is your faithfulness, morning by morning new mercies I see. All I have needed your hand has provided."}' \
    | python3 -c 'import json, sys; r = json.load(sys.stdin); print("analysis:", r["scoring_results"]["final_score"], r["model_analysis"]["framework"]["verdict"], r["configuration_snapshot"]["model_version"])'
docker logs "$NAME" 2>&1 | grep -E "Running upgrade|Listening at|analyzer .* ready"
echo "container check passed"
