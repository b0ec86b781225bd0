#!/usr/bin/env bash
# The Docker image and the compose file, tested for real: builds the runtime image around the
# binary CI already built (no registry is reachable here, so the Rust build image cannot be
# pulled; see the Dockerfile's `prebuilt` target), then runs tests/docker/compose_test.py
# against `docker-compose up` (Debian's docker-compose 1.29; compose v2 reads the same file).
#
# Idempotent: installs docker.io, docker-compose and debootstrap when missing, starts dockerd
# only when none answers (and stops the one it started), makes the `debian:bookworm-slim` base
# image once (debootstrap, as the Dockerfile names it). Needs root, and says so otherwise.
#
# Env: RIVULET_BIN (the binary for the image; default target/debug/rivulet).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[docker-test] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    log "needs root: it installs Docker Engine and starts dockerd (run it as root)" >&2
    exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

STARTED_DOCKERD=""
cleanup() {
    if [ -n "$STARTED_DOCKERD" ]; then
        log "stopping the dockerd this script started (pid $STARTED_DOCKERD)"
        kill "$STARTED_DOCKERD" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
            sleep 0.2
        done
    fi
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    dockerd >"${TMPDIR:-/tmp}/rivulet-dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not start; see ${TMPDIR:-/tmp}/rivulet-dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    log "making the debian:bookworm-slim base image (debootstrap, once)"
    rootfs="$(mktemp -d)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    # What Debian's slim images leave out: documentation, manuals, translations, apt lists.
    rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
    rm -rf "$rootfs"
fi

BIN="${RIVULET_BIN:-target/debug/rivulet}"
case "$BIN" in /*) BIN="$(realpath --relative-to="$ROOT" "$BIN")" ;; esac
[ -x "$BIN" ] || { log "no rivulet binary at $BIN (build it first)" >&2; exit 1; }
log "building rivulet:latest around $BIN"
docker build -q --target prebuilt --build-arg "BINARY=$BIN" -t rivulet:latest . >/dev/null
docker image ls rivulet:latest --format '[docker-test] image rivulet:latest: {{.Size}}'

PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3
RIVULET_TARGET=prebuilt RIVULET_BINARY="$BIN" timeout 600 "$PY" tests/docker/compose_test.py
