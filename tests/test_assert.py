"""KKASSERT/KASSERT (csrc/hammer2_assert.h): with invariants a failed one names
file, line, expression (and message) and aborts; without, the expression is not
evaluated at all."""
import re
import signal
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent.parent / "csrc"

PROGRAM = r"""
#include <stdio.h>
#include "hammer2_assert.h"

static int evaluated;

static int
touch(int v)
{
	++evaluated;
	return v;
}

int
main(int argc, char **argv)
{
	KKASSERT(touch(1) == 1);
	printf("evaluated %d\n", evaluated);
	fflush(stdout);
	if (argc > 1)
		KASSERT(touch(argc) == 1, ("argc %d", argc));
	KKASSERT(touch(0) == 1);
	return 0;
}
"""


def build(tmp_path, *flags):
    src = tmp_path / "t.c"
    src.write_text(PROGRAM)
    exe = tmp_path / ("t" + "".join(f.strip("-") for f in flags))
    subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Werror", "-I", str(CSRC), *flags,
                    str(src), "-o", str(exe)], check=True)
    return exe


def line_of(text):
    return next(i for i, line in enumerate(PROGRAM.split("\n"), 1) if text in line)


@pytest.mark.parametrize("args, exp, msg", [
    ([], "touch(0) == 1", ""),
    (["x"], "touch(argc) == 1", ": argc 2"),
])
def test_invariants_abort_naming_the_assertion(tmp_path, args, exp, msg):
    proc = subprocess.run([build(tmp_path, "-DHAMMER2_INVARIANTS"), *args],
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGABRT
    assert proc.stdout == "evaluated 1\n"
    assert re.fullmatch(f'pyh2: assertion "{re.escape(exp)}" failed at '
                        f'\\S*t\\.c:{line_of(exp)}{msg}\n', proc.stderr)


def test_release_does_not_evaluate(tmp_path):
    proc = subprocess.run([build(tmp_path), "x"], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "evaluated 0\n", "")
