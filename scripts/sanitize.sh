#!/usr/bin/env bash
# Sanitizer stage: pyh2._core built with AddressSanitizer and UndefinedBehaviorSanitizer
# (PYH2_BUILD=sanitize, invariants on) in a copy of the tree, build/sanitize, so the
# in-place build stays as it is; then, under it, the core's tests, the hostile-image
# corpus and a short torture (SANITIZE_TORTURE_SECONDS, default 60). Child processes
# (CLI, fuzz workers, torture workers) inherit the environment and run sanitized too.
# Any sanitizer report fails the stage, also one a child wrote where no test looked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
tree=$repo/build/sanitize
logs=$tree/sanitizer-logs

# The tree's sources (tracked and new files); tar keeps their mtimes, so only what
# changed is rebuilt. Source directories are refreshed whole: no removed file lingers.
mkdir -p "$tree"
rm -rf "$tree"/{csrc,pyh2,tests,scripts} "$logs"
git ls-files -z -co --exclude-standard | tar -c --null -T - | tar -x -C "$tree"
if ! log=$(cd "$tree" && PYH2_BUILD=sanitize python3 setup.py build_ext --inplace -q 2>&1); then
    printf '%s\n' "$log" >&2
    echo "sanitize: building the sanitized pyh2._core failed" >&2
    exit 1
fi

: "${PYH2_REFERENCE_IMAGES:=$(cd "$repo/.." && pwd)/shared/reference-images}"
export PYH2_REFERENCE_IMAGES
mkdir -p "$logs"
# CPython leaks by design: no leak check. UBSan aborts (-fno-sanitize-recover) as ASan does.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
preload=$(gcc -print-file-name=libasan.so)
reports='runtime error:|ERROR: AddressSanitizer'

# Run one step under the sanitizers; it fails on its own status or on any report.
step() {
    local out=$logs/step.out rc=0
    echo "sanitize: $*" >&2
    (cd "$tree" && LD_PRELOAD=$preload "$@") 2>&1 | tee "$out" || rc=$?
    # the logs also hold mere warnings (e.g. about swapcontext): only reports count
    if grep -qE "$reports" "$out" "$logs"/*san.* 2>/dev/null; then
        grep -lE "$reports" "$logs"/*san.* 2>/dev/null | xargs -r cat >&2
        echo "sanitize: sanitizer report in: $*" >&2
        exit 1
    fi
    if ((rc != 0)); then
        echo "sanitize: failed (exit $rc): $*" >&2
        exit "$rc"
    fi
}

# FUSE mounts are left out: the mount tests run fusermount3 (setuid, so no preload)
# and time-sensitive daemons; the FUSE operations call the same core. So is the fork
# test: ASan's allocator lock is not held across fork, so a child forked while a
# thread allocates can hang in ASan itself.
step python3 -m pytest -q -n 2 -p no:cacheprovider \
    --deselect tests/test_threads.py::test_fork_while_threads_churn_buffers \
    tests/test_write_api.py tests/test_cluster.py tests/test_threads.py \
    tests/test_cluster_resync_passes.py tests/test_cluster_write_share.py \
    tests/test_devices.py tests/test_devio.py tests/test_checks.py \
    tests/test_bad_input.py tests/test_hostile.py tests/test_write_errors.py \
    tests/test_hostile_names.py tests/test_fsck_deep.py tests/test_xport.py
step python3 -m pyh2 torture --seconds "${SANITIZE_TORTURE_SECONDS:-60}" --workers 2 \
    --crash --faults
