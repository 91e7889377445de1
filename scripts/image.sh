#!/usr/bin/env bash
# Builds the wscluster container image from the repository's Dockerfile with docker or podman
# (whichever is installed; CONTAINER_TOOL=podman forces one), tagged IMAGE:VERSION where VERSION
# is the package version of Cargo.toml. With --push, also pushes it (log in to the registry first).
#
#   scripts/image.sh                                         # wscluster:0.1.0, local
#   IMAGE=registry.example/team/wscluster scripts/image.sh --push
#
# deploy/k8s names the image wscluster:VERSION; point it at a registry with kustomize's
# `images:` (deploy/k8s/kustomization.yaml, docs/deployment.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${IMAGE:-wscluster}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || true)"
PUSH=no
for arg in "$@"; do
    case "$arg" in
        --push) PUSH=yes ;;
        *) echo "usage: [IMAGE=name] [CONTAINER_TOOL=docker|podman] $0 [--push]" >&2; exit 2 ;;
    esac
done

TOOL="${CONTAINER_TOOL:-}"
if [ -z "$TOOL" ]; then
    for candidate in docker podman; do
        if command -v "$candidate" >/dev/null 2>&1; then
            TOOL="$candidate"
            break
        fi
    done
fi
if [ -z "$TOOL" ]; then
    echo "image.sh: neither docker nor podman is installed" >&2
    exit 1
fi

echo "image.sh: building ${IMAGE}:${VERSION} (commit ${COMMIT:-unknown}) with ${TOOL}" >&2
"$TOOL" build \
    --build-arg "WSCLUSTER_COMMIT=${COMMIT}" \
    --tag "${IMAGE}:${VERSION}" \
    --file Dockerfile \
    .
if [ "$PUSH" = yes ]; then
    "$TOOL" push "${IMAGE}:${VERSION}"
fi
echo "${IMAGE}:${VERSION}"
