"""The one exception a torture run raises on a divergence."""
import errno


class TortureFailure(Exception):
    """kind: 'model' (tree differs), 'errno' (wrong error), 'crash' (a crash image), 'fsck',
    'exception' (the core raised unexpectedly), 'cluster'; index: the failing op's position."""

    def __init__(self, kind: str, detail: str, index: int | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.index = kind, detail, index


class WrongErrno(AssertionError):
    """An 'expect' op did not fail with the errno the model gave."""


def failure(op, e: Exception, index: int, where: str = "") -> TortureFailure:
    """The failure op's exception stands for, once no device fault explains it."""
    kind, what = "exception", str(e)
    if isinstance(e, WrongErrno):
        kind = "errno"
    elif op[0] == "expect" and isinstance(e, OSError):
        kind, what = "errno", f"expected {op[1]}, got {errno.errorcode.get(e.errno, e.errno)}: {e}"
    elif isinstance(e, AssertionError):
        kind = "model"
    return TortureFailure(kind, f"{where}{op!r}: {what}", index)
