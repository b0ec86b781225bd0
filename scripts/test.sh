#!/usr/bin/env bash
# The whole test suite, in one command: installs the test dependencies, builds the workspace,
# runs the Rust tests, then the client compatibility tests (tests/clients, pytest: real Kafka
# clients — kafka-python and kcat — against the built `rivulet` binary), then the Docker image
# and the compose file (scripts/docker-test.sh: needs root, installs and starts Docker Engine).
#
# Env: RIVULET_BIN (binary the client tests start; default <target dir>/debug/rivulet),
#      PYTEST_ARGS (extra pytest arguments, e.g. "-k kcat -x").
# Exits non-zero at the first failing step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STEP="start"
START=$SECONDS
declare -a DONE=()

on_exit() {
    local rc=$?
    echo
    echo "==================== test.sh summary ===================="
    for s in "${DONE[@]+"${DONE[@]}"}"; do echo "  ok      $s"; done
    if [ "$rc" -ne 0 ]; then
        echo "  FAILED  $STEP (exit $rc)"
        echo "test.sh: FAILED after $((SECONDS - START))s"
    else
        echo "test.sh: all steps passed in $((SECONDS - START))s"
    fi
}
trap on_exit EXIT

step() {
    STEP="$1"
    echo
    echo "==> $STEP"
}
ok() { DONE+=("$STEP"); }

step "install test dependencies (scripts/install-test-deps.sh)"
./scripts/install-test-deps.sh
ok

step "cargo build --workspace --bins"
cargo build --workspace --bins
ok

step "cargo test --workspace"
cargo test --workspace
ok

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
export RIVULET_BIN="${RIVULET_BIN:-$TARGET_DIR/debug/rivulet}"
case "$RIVULET_BIN" in /*) ;; *) RIVULET_BIN="$ROOT/$RIVULET_BIN" ;; esac
step "client tests: pytest tests/clients (RIVULET_BIN=$RIVULET_BIN)"
if [ ! -x "$RIVULET_BIN" ]; then
    echo "no executable at $RIVULET_BIN" >&2
    exit 1
fi
# Every wait inside the tests is bounded; this is the backstop for the whole run.
# shellcheck disable=SC2086
timeout --foreground 1800 "$ROOT/.venv/bin/python" -m pytest tests/clients ${PYTEST_ARGS:-}
ok

step "docker: the image and the compose file (scripts/docker-test.sh)"
RIVULET_BIN="$RIVULET_BIN" ./scripts/docker-test.sh
ok
