#!/usr/bin/env python3
"""Writes the KV block file seed corpus: tests/fuzz/corpus/kv_block/{ok,bad}-*.kvb.

ok-*  files are whole valid block files (format: the top of src/kv/kv_disk.c); bad-*
files each break one rule and must be rejected as corrupt with a one-line message. The
corpus seeds the libFuzzer target and replays in tests/unit/test_kv_disk.c. XXH3-64 comes
from the system libxxhash (the library kvserve links). Output is deterministic."""
import ctypes
import ctypes.util
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "kv_block")
MAGIC = b"KSKVBLK\n"

_lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
_lib.XXH3_64bits.restype = ctypes.c_uint64
_lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def xxh3(b):
    return _lib.XXH3_64bits(b, len(b))


def header(key, parent=b"\0" * 16, fp=bytes(range(0xa0, 0xb0)), version=1, kv_type=1, bt=4,
           nl=2, row=16, payload=None, magic=MAGIC, check=None):
    payload = 2 * nl * bt * row if payload is None else payload
    h = magic + struct.pack("<II", version, kv_type) + fp + key + parent + \
        struct.pack("<IIQQ", bt, nl, row, payload)
    return h + struct.pack("<Q", xxh3(h) if check is None else check)


def block(key=bytes(range(1, 17)), seed=1, bt=4, nl=2, row=16, **kw):
    body = header(key, bt=bt, nl=nl, row=row, **kw)
    body += b"".join(struct.pack("<i", 1000 * seed + i) for i in range(bt))
    body += bytes((seed * 7 + i) & 0xff for i in range(2 * nl * bt * row))
    return body + struct.pack("<Q", xxh3(body))


def flip(b, off):
    b = bytearray(b)
    b[off] ^= 0x40
    return bytes(b)


GOOD = block()
CASES = {
    "ok-first-block": GOOD,
    "ok-child-block": block(key=bytes(range(2, 18)), parent=bytes(range(1, 17)), seed=2),
    "ok-one-token-one-layer": block(bt=1, nl=1, row=2, seed=3),
    "bad-empty": b"",
    "bad-header-truncated": GOOD[:50],
    "bad-magic": block(magic=b"KSKVBLK\0"),
    "bad-version": block(version=2),
    "bad-header-check": flip(GOOD, 20),
    "bad-zero-tokens": block(bt=0),
    "bad-zero-layers": block(nl=0),
    "bad-zero-row": block(row=0),
    "bad-huge-tokens": header(bytes(range(1, 17)), bt=1 << 31, payload=0),
    "bad-payload-mismatch": block(payload=7),
    "bad-payload-overflow": header(bytes(range(1, 17)), bt=65536, nl=65536, row=1 << 32,
                                   payload=(2 * 65536 * 65536 * (1 << 32)) & (2**64 - 1)),
    "bad-zero-key": block(key=b"\0" * 16),
    "bad-own-parent": block(parent=bytes(range(1, 17))),
    "bad-truncated-payload": GOOD[:-20],
    "bad-trailing-bytes": GOOD + b"\0",
    "bad-payload-flipped": flip(GOOD, 150),
    "bad-token-flipped": flip(GOOD, 97),
    "bad-checksum-flipped": flip(GOOD, len(GOOD) - 1),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".kvb"):
            os.remove(os.path.join(OUT, name))
    for name, data in CASES.items():
        with open(os.path.join(OUT, name + ".kvb"), "wb") as f:
            f.write(data)
    print(f"wrote {len(CASES)} files to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
