"""Check codes and decoding of single blocks, including sha192, which no
reference image carries (the real tool cannot write it)."""
import hashlib
import struct
import zlib

import pytest

from pyh2 import _core

CHECK_NONE, CHECK_DISABLED, CHECK_SHA192 = 0, 1, 4
COMP_NONE, COMP_ZLIB = 0, 3


def bref(check: int, comp: int, check_bytes: bytes = b"") -> bytes:
    """A raw DATA blockref carrying a check value (64-byte check area)."""
    head = struct.pack("<BBBBBBH", 3, (check << 4) | comp, 0, 16, 0, 0, 0)
    body = struct.pack("<QQQQQ", 0, 1, 1, 0x100000 | 16, 0) + bytes(16)
    return head + body + check_bytes.ljust(64, b"\0")


def sha192(data: bytes) -> bytes:
    """SHA-256 with its last 64-bit word folded into the third."""
    d = hashlib.sha256(data).digest()
    w = struct.unpack("<4Q", d)
    return struct.pack("<3Q", w[0], w[1], w[2] ^ w[3])


DATA = bytes(range(256)) * 256   # 64 KiB


def test_sha192_verifies_and_rejects():
    raw = bref(CHECK_SHA192, COMP_NONE, sha192(DATA))
    assert _core.decode_block(raw, DATA) == DATA
    bad = bytearray(DATA)
    bad[1234] ^= 0x10
    with pytest.raises(_core.CheckError) as ei:
        _core.decode_block(raw, bytes(bad))
    assert "sha192" in str(ei.value)


@pytest.mark.parametrize("check", [CHECK_NONE, CHECK_DISABLED])
def test_unchecked_blocks_pass_any_data(check):
    assert _core.decode_block(bref(check, COMP_NONE, b"\xff" * 64), DATA) == DATA


def test_zlib_block_decodes_and_pads():
    text = b"hammer2 " * 1000
    out = _core.decode_block(bref(CHECK_NONE, COMP_ZLIB), zlib.compress(text), 65536)
    assert out[:len(text)] == text and out[len(text):] == bytes(65536 - len(text))


def test_corrupt_zlib_stream_is_an_error_not_a_crash():
    with pytest.raises(_core.H2Error) as ei:
        _core.decode_block(bref(CHECK_NONE, COMP_ZLIB), b"\x78\x9c garbage" * 10)
    assert "zlib" in str(ei.value)


@pytest.mark.parametrize("clen", [-5, 0, 1 << 20])
def test_lz4_length_out_of_range(clen):
    raw = bref(CHECK_NONE, 2)
    with pytest.raises(_core.H2Error) as ei:
        _core.decode_block(raw, struct.pack("<i", clen) + bytes(1020))
    assert "lz4" in str(ei.value)


def test_dirhash_layout():
    """Bit 63 and bit 15 always set, collision bits clear; '.'-split fields."""
    for name in (b"a", b"words.txt", b"x" * 255, "é-ü_~.".encode()):
        h = _core.dirhash(name)
        assert h & (1 << 63) and h & 0x8000 and not h & 0x7FFF
    assert _core.dirhash(b"a.b") != _core.dirhash(b"ab")
