# Planted bugs for the torture suite (csrc/hammer2_debug.h): tests only.

cdef extern from "hammer2_debug.h":
    int hammer2_planted_bug

PLANTED_BUGS = {"nobarrier": 0x01, "dropwrite": 0x02}


def set_planted_bug(name):
    """Switch a planted flush bug on ('nobarrier', 'dropwrite') or every one off (None).
    Process-wide; only the torture suite's tests use it."""
    global hammer2_planted_bug
    if name is not None and name not in PLANTED_BUGS:
        raise H2Error(_errno.EINVAL, f"unknown planted bug '{name}' "
                                     f"(one of {', '.join(PLANTED_BUGS)})")
    hammer2_planted_bug = PLANTED_BUGS[name] if name else 0


def planted_bug():
    return next((k for k, v in PLANTED_BUGS.items() if v == hammer2_planted_bug), None)
