#!/usr/bin/env bash
# Idempotent setup: system packages, Python build/test tools, then the in-place build of
# pyh2._core. Silent when everything is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PKGS=(build-essential pkg-config zstd liblz4-dev zlib1g-dev libssl-dev libxxhash-dev
          libfuse3-dev fuse3 nbdkit qemu-utils libnbd-bin fio stress-ng fuse2fs)
PIP_PKGS=(Cython setuptools wheel pytest pytest-xdist pytest-timeout)

missing=()
for p in "${APT_PKGS[@]}"; do
    # dpkg -s alone also succeeds for removed-but-configured packages
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mapfile -t missing < <(python3 - "${PIP_PKGS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        version(name)
    except PackageNotFoundError:
        print(name)
PY
)
if ((${#missing[@]})); then
    echo "setup: pip installing ${missing[*]}" >&2
    python3 -m pip install -q "${missing[@]}"
fi

# setuptools prints "running build_ext" even with -q: show its output only when it fails
if ! log=$(python3 setup.py build_ext --inplace -q 2>&1); then
    printf '%s\n' "$log" >&2
    echo "setup: building pyh2._core failed" >&2
    exit 1
fi
