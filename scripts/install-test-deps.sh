#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine, skipping whatever is
# already present, so it is cheap to run before every test run (scripts/test.sh does).
#
#   - apt: kcat (client tests), and the C toolchain + zlib headers that the bundled librdkafka
#     build of the `rdkafka` crate needs (build-essential, pkg-config, zlib1g-dev; zstd is
#     vendored by zstd-sys, so no libzstd-dev), python3-venv for the Python test venv,
#     chromium and chromium-driver (the dashboard's headless browser test), postgresql (the
#     PostgreSQL sink tests start their own server from its binaries in
#     /usr/lib/postgresql/<version>/bin; the package's own cluster is not used).
#   - pip, into <repo>/.venv: kafka-python, pytest, selenium and pyarrow (required: pyarrow is
#     the independent reader of the Parquet sink tests), lz4 / zstandard / python-snappy
#     (optional: kafka-python's codecs; the tests skip a codec that is missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

log() { printf '[install-test-deps] %s\n' "$*"; }

# Run a command as root: directly when we are root, through sudo when that is available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $* (no sudo available)"
        return 1
    fi
}

# ---- apt packages -------------------------------------------------------------------------
missing=()
if ! command -v kcat >/dev/null 2>&1 && ! command -v kafkacat >/dev/null 2>&1; then
    missing+=(kcat)
fi
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    missing+=(build-essential)
fi
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
# Debian's Chromium and its ChromeDriver (same version, /usr/bin): the dashboard end-to-end test.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# The PostgreSQL sink tests need initdb and postgres (not a running cluster).
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    missing+=(postgresql)
fi

# The venv module: a python3 that cannot make a venv with pip needs Debian's python3-venv.
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
    if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv python3-pip)
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing ${missing[*]} and no apt-get: install them by hand"
        exit 1
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    # Installing postgresql must not start (and keep running) the package's own cluster.
    if [ ! -e /usr/sbin/policy-rc.d ] && printf '%s\n' "${missing[@]}" | grep -qx postgresql; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # kcat is called kafkacat on older releases.
    if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        if printf '%s\n' "${missing[@]}" | grep -qx kcat; then
            rest=()
            for p in "${missing[@]}"; do [ "$p" = kcat ] || rest+=("$p"); done
            as_root apt-get install -y -qq --no-install-recommends kafkacat ${rest[@]+"${rest[@]}"}
        else
            exit 1
        fi
    fi
else
    log "apt packages: all present"
fi

# ---- Python venv --------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

need_pip=()
"$VPY" -c 'import kafka' >/dev/null 2>&1 || need_pip+=(kafka-python)
"$VPY" -c 'import pytest' >/dev/null 2>&1 || need_pip+=(pytest)
# Drives Debian's chromedriver (the test passes its path, so Selenium Manager never downloads).
"$VPY" -c 'import selenium' >/dev/null 2>&1 || need_pip+=(selenium)
"$VPY" -c 'import pyarrow.parquet' >/dev/null 2>&1 || need_pip+=(pyarrow)
if [ "${#need_pip[@]}" -gt 0 ]; then
    log "pip install ${need_pip[*]}"
    "$VPY" -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi

# Optional codecs: best effort, one at a time, so one that fails to build does not block the
# others; the tests skip the codec whose module is missing.
for spec in "lz4:lz4" "zstandard:zstandard" "snappy:python-snappy"; do
    mod="${spec%%:*}"
    pkg="${spec#*:}"
    if ! "$VPY" -c "import $mod" >/dev/null 2>&1; then
        log "pip install $pkg (optional)"
        "$VPY" -m pip install --quiet --disable-pip-version-check "$pkg" \
            || log "could not install $pkg: its codec's tests will be skipped"
    fi
done

log "done (kcat: $(command -v kcat || command -v kafkacat), chromium: $(command -v chromium), python: $VPY)"
