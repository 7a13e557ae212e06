#!/bin/sh
# Builds app/ into an image on a Node base and pushes it: the swarm example without
# `docker build` on a manager node. Every setting can be overridden from the environment:
#
#   IMAGE=myregistry.com:5000/server ./build.sh
#   PLATFORM=linux/amd64,linux/arm64 ./build.sh
#   SPLIT=32M ./build.sh      (a big node_modules: an edit re-uploads one ~32 MB part)
set -eu
cd "$(dirname "$0")"

OCIBUILD=${OCIBUILD:-ocibuild}
BASE=${BASE:-docker.io/library/node:22-alpine}
IMAGE=${IMAGE:-localhost:5000/server:latest}

set -- app \
    --from "$BASE" \
    --cmd '["node", "/app/server.js"]' \
    --env NODE_ENV=production \
    --expose 80 \
    -t "$IMAGE"
if [ -n "${PLATFORM:-}" ]; then
    set -- "$@" --platform "$PLATFORM"
fi
if [ -n "${SPLIT:-}" ]; then
    set -- "$@" --split-layers "$SPLIT"
fi
exec "$OCIBUILD" "$@"
