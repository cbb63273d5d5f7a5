#!/usr/bin/env bash
# Install what the transfer benchmarks need, idempotently (run as root, or with sudo for apt):
#   - Debian's nginx (the server), curl, aria2 and wget2 (reference downloaders), GNU time,
#     strace
#   - radiant-mlhub 0.5.5 (the original client, a reference) in its own venv
#   - stac-asset 0.4.x with its CLI (a reference: downloads the assets of STAC items) in its own
#     venv
#   - py-spy (sampling profiler) in the main venv, if one is active / given
#
#   bash benchmarks/setup.sh                 # venvs for radiant-mlhub, stac-asset under
#                                            # /opt/bench-venvs
#   BENCH_VENVS=/somewhere bash benchmarks/setup.sh
#
# mlhub-sync itself is assumed installed in the current venv (`pip install -e .`).
set -euo pipefail

VENVS=${BENCH_VENVS:-/opt/bench-venvs}
RADIANT_VERSION=${RADIANT_MLHUB_VERSION:-0.5.5}
STAC_ASSET_SPEC=${STAC_ASSET_SPEC:-stac-asset[cli]>=0.4,<0.5}
PY=${PYTHON:-python3}

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v aria2c >/dev/null 2>&1 || need+=(aria2)
command -v wget2 >/dev/null 2>&1 || need+=(wget2)
[ -x /usr/bin/time ] || need+=(time)
command -v strace >/dev/null 2>&1 || need+=(strace)  # --profile: system calls per file
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
# Debian starts nginx on install (port 80); the benchmark runs its own instance, so stop the
# packaged service if it is running (harmless when there is no init system).
if command -v service >/dev/null 2>&1 && [ -f /run/nginx.pid ]; then
    service nginx stop >/dev/null 2>&1 || true
fi

rvenv="$VENVS/radiant-mlhub"
if ! "$rvenv/bin/python" -c "import radiant_mlhub, sys; \
sys.exit(radiant_mlhub.__version__ != '$RADIANT_VERSION')" 2>/dev/null; then
    echo "setup: radiant-mlhub $RADIANT_VERSION into $rvenv"
    mkdir -p "$VENVS"
    "$PY" -m venv "$rvenv"
    "$rvenv/bin/pip" install -q "radiant-mlhub==$RADIANT_VERSION"
fi

svenv="$VENVS/stac-asset"
if ! { [ -x "$svenv/bin/stac-asset" ] && "$svenv/bin/python" -c "import click, stac_asset, sys; \
from importlib.metadata import version; sys.exit(not version('stac-asset').startswith('0.4.'))" \
    2>/dev/null; }; then
    echo "setup: $STAC_ASSET_SPEC into $svenv"
    mkdir -p "$VENVS"
    "$PY" -m venv "$svenv"
    "$svenv/bin/pip" install -q "$STAC_ASSET_SPEC"
fi

if [ -n "${VIRTUAL_ENV:-}" ] && ! "$VIRTUAL_ENV/bin/python" -m pip show -q py-spy >/dev/null 2>&1
then
    echo "setup: py-spy into $VIRTUAL_ENV"
    "$VIRTUAL_ENV/bin/python" -m pip install -q py-spy
fi

echo "setup: ok"
echo "  nginx:  $(/usr/sbin/nginx -v 2>&1)"
echo "  curl:   $(curl --version | head -n1 | cut -d' ' -f1-2)"
echo "  aria2c: $(aria2c --version | head -n1)"
echo "  wget2:  $(wget2 --version | head -n1 | cut -d' ' -f1-3)"
echo "  radiant-mlhub: $("$rvenv/bin/python" -c 'import radiant_mlhub; print(radiant_mlhub.__version__)')"
echo "  stac-asset: $("$svenv/bin/python" -c \
    'from importlib.metadata import version; print(version("stac-asset"))')"
