"""The pyh2 command line run in a child process, as a user runs it."""
import subprocess
import sys

from ..refimages import REPO


def run_pyh2(*args, text=False, timeout=600):
    """`python3 -m pyh2 ARGS` beside the pyh2 package in use (the repo root for an
    in-place build); returns the CompletedProcess (bytes unless text)."""
    return subprocess.run([sys.executable, "-m", "pyh2", *map(str, args)],
                          cwd=REPO, capture_output=True, text=text, timeout=timeout)


def assert_clean_failure(proc, *needles):
    """A CLI error: status 1..127, a message on stderr naming each needle, no traceback."""
    err = proc.stderr.decode(errors="replace")
    assert 1 <= proc.returncode <= 127, (proc.returncode, err)
    assert err.strip(), "no message on stderr"
    assert "Traceback" not in err, err
    for n in needles:
        assert str(n) in err, (n, err)
