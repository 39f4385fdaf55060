"""Argument types of the `pyh2` command. Each rejects bad input with a message naming it;
argparse then prints the usage line and exits with status 2."""
from __future__ import annotations

import argparse
import math

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_LIMIT = 1 << 63        # sizes and inode numbers are 64-bit, the top bit reserved


def size(text: str) -> int:
    """Bytes: 1048576, 512M, 4G, 1.5T (binary units, an optional i/b suffix)."""
    t = text.strip().lower().rstrip("ib")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in _UNITS else (t, "")
    try:
        value = int(num) * _UNITS[unit]         # exact, however large
    except ValueError:
        try:
            value = float(num) * _UNITS[unit]
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad size '{text}' (e.g. 4G, 512M, 1048576)") \
                from None
    if not math.isfinite(value) or not 0 <= value < _LIMIT:
        raise argparse.ArgumentTypeError(f"size '{text}' out of range (0 to 8 EiB)")
    return int(value)


def sizes(text: str) -> int | list[int]:
    """A size, or one per volume of a multi-volume filesystem: 1G:1G:2G."""
    parts = [size(t) for t in text.split(":")]
    return parts[0] if len(parts) == 1 else parts


def mode(text: str) -> int:
    """Permission bits in octal, at most 7777."""
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad mode '{text}' (octal, e.g. 755)") from None
    if not 0 <= value <= 0o7777:
        raise argparse.ArgumentTypeError(f"mode '{text}' out of range (0 to 7777)")
    return value


def inum(text: str) -> int:
    """An inode number, decimal or 0x-prefixed hex."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad inode number '{text}' (e.g. 0x1c or 28)") \
            from None
    if not 0 < value < _LIMIT:
        raise argparse.ArgumentTypeError(f"inode number '{text}' out of range")
    return value


def at_least(low: int):
    """A whole number of at least `low`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        return value
    parse.__name__ = f"number >= {low}"     # argparse names the type in some messages
    return parse
