#!/usr/bin/env python3
"""Writes the GGUF seed corpus: tests/fuzz/corpus/gguf/{ok,bad}-*.gguf.

ok-*  files are valid and must open; bad-* files each break one rule of the format and
must be rejected with a clear error (never a crash). The corpus seeds the libFuzzer
target and replays as an ordinary test. Re-run after changing the cases; output is
deterministic."""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def tinfo(name, dims, ttype, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ttype, offset)


def header(n_tensors, n_kv, version=3, magic=b"GGUF"):
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def pad(b, a=32):
    return b + b"\0" * ((-len(b)) % a)


BASE_KVS = [kv("general.architecture", STR, s("qwen3")), kv("general.name", STR, s("corpus"))]


def model(kvs=None, tensors=None, data=None, version=3, align=32, n_tensors=None, n_kv=None):
    kvs = BASE_KVS if kvs is None else kvs
    tensors = [tinfo("a.weight", [32, 2], 0, 0)] if tensors is None else tensors
    data = (b"\x00\x00\x80\x3f" * 64) if data is None else data
    body = header(len(tensors) if n_tensors is None else n_tensors,
                  len(kvs) if n_kv is None else n_kv, version) + b"".join(kvs) + b"".join(tensors)
    return pad(body, align) + data


CASES = {}

# Valid seeds: give the fuzzer the structure to mutate.
CASES["ok-minimal-v3"] = model()
CASES["ok-minimal-v2"] = model(version=2)
CASES["ok-no-tensors"] = header(0, 1) + kv("general.architecture", STR, s("qwen3"))
CASES["ok-all-value-types"] = model(kvs=[
    kv("t.u8", U8, b"\x07"), kv("t.i8", I8, b"\xf9"), kv("t.u16", U16, struct.pack("<H", 700)),
    kv("t.i16", I16, struct.pack("<h", -700)), kv("t.u32", U32, struct.pack("<I", 70000)),
    kv("t.i32", I32, struct.pack("<i", -70000)), kv("t.f32", F32, struct.pack("<f", 1.5)),
    kv("t.bool", BOOL, b"\x01"), kv("t.str", STR, s("héllo")), kv("t.u64", U64, struct.pack("<Q", 1 << 40)),
    kv("t.i64", I64, struct.pack("<q", -(1 << 40))), kv("t.f64", F64, struct.pack("<d", 2.25)),
    kv("t.arr_i32", ARR, struct.pack("<IQ", I32, 3) + struct.pack("<3i", 1, -2, 3)),
    kv("t.arr_str", ARR, struct.pack("<IQ", STR, 2) + s("a") + s("bc")),
    kv("t.arr_arr", ARR, struct.pack("<IQ", ARR, 2) + struct.pack("<IQ", U8, 2) + b"\x01\x02" +
       struct.pack("<IQ", STR, 1) + s("x")),
])
CASES["ok-alignment-64"] = model(kvs=BASE_KVS + [kv("general.alignment", U32, struct.pack("<I", 64))], align=64)
q8 = b"\x00\x3c" + bytes(range(32))  # one Q8_0 block: d = 1.0, 32 int8
CASES["ok-q8_0-two-tensors"] = model(tensors=[tinfo("a", [32], 8, 0), tinfo("b", [32, 1], 8, 64)],
                                     data=pad(q8) + q8)

# Broken files, one rule each.
CASES["bad-empty"] = b""
CASES["bad-truncated-magic"] = b"GG"
CASES["bad-magic"] = b"GGML" + model()[4:]
CASES["bad-version-0"] = model(version=0)
CASES["bad-version-1"] = model(version=1)
CASES["bad-version-4"] = model(version=4)
CASES["bad-version-big-endian"] = b"GGUF" + struct.pack(">I", 3) + model()[8:]
CASES["bad-truncated-header"] = header(1, 2)[:14]
CASES["bad-absurd-tensor-count"] = model(n_tensors=1 << 62)
CASES["bad-absurd-kv-count"] = model(n_kv=(1 << 64) - 1)
CASES["bad-kv-count-too-high"] = model(n_kv=3)
CASES["bad-key-length-absurd"] = header(0, 1) + struct.pack("<Q", 1 << 62) + b"key" + b"\0" * 32
CASES["bad-string-past-eof"] = header(0, 1) + s("k") + struct.pack("<IQ", STR, 1000) + b"short"
CASES["bad-unknown-value-type"] = header(0, 1) + s("k") + struct.pack("<I", 13) + b"\0" * 8
CASES["bad-unknown-array-type"] = header(0, 1) + s("k") + struct.pack("<IIQ", ARR, 99, 1) + b"\0" * 8
CASES["bad-array-count-absurd"] = header(0, 1) + s("k") + struct.pack("<IIQ", ARR, U32, 1 << 61) + b"\0" * 16
CASES["bad-array-of-strings-absurd"] = header(0, 1) + s("k") + struct.pack("<IIQ", ARR, STR, 1 << 40) + s("a")
nested = b"".join(struct.pack("<IQ", ARR, 1) for _ in range(64)) + struct.pack("<IQ", U8, 0)
CASES["bad-arrays-nested-too-deep"] = header(0, 1) + s("k") + struct.pack("<I", ARR) + nested
CASES["bad-bool-value"] = header(0, 1) + s("k") + struct.pack("<I", BOOL) + b"\x02"
CASES["bad-duplicate-key"] = model(kvs=BASE_KVS + [kv("general.name", STR, s("again"))])
CASES["bad-alignment-not-pow2"] = model(kvs=BASE_KVS + [kv("general.alignment", U32, struct.pack("<I", 24))])
CASES["bad-alignment-zero"] = model(kvs=BASE_KVS + [kv("general.alignment", U32, struct.pack("<I", 0))])
CASES["bad-alignment-wrong-type"] = model(kvs=BASE_KVS + [kv("general.alignment", STR, s("32"))])
CASES["bad-tensor-ndims-0"] = model(tensors=[tinfo("a", [], 0, 0)])
CASES["bad-tensor-ndims-5"] = model(tensors=[tinfo("a", [1, 1, 1, 1, 1], 0, 0)])
CASES["bad-tensor-dims-overflow"] = model(tensors=[tinfo("a", [1 << 40, 1 << 40], 0, 0)])
CASES["bad-tensor-dim-negative"] = model(tensors=[tinfo("a", [(1 << 64) - 32, 1], 0, 0)])
CASES["bad-tensor-type-removed"] = model(tensors=[tinfo("a", [32, 2], 4, 0)])
CASES["bad-tensor-type-unknown"] = model(tensors=[tinfo("a", [32, 2], 99, 0)])
CASES["bad-tensor-row-not-whole-blocks"] = model(tensors=[tinfo("a", [31, 2], 2, 0)])
CASES["bad-tensor-offset-misaligned"] = model(tensors=[tinfo("a", [32], 0, 4)])
CASES["bad-tensor-offset-past-eof"] = model(tensors=[tinfo("a", [32], 0, 1 << 20)])
CASES["bad-tensor-offset-overflow"] = model(tensors=[tinfo("a", [32], 0, (1 << 64) - 32)])
CASES["bad-tensor-size-past-eof"] = model(tensors=[tinfo("a", [32, 1000], 0, 0)])
CASES["bad-tensor-duplicate-name"] = model(tensors=[tinfo("a", [32], 0, 0), tinfo("a", [32], 0, 128)])
CASES["bad-tensor-overlap"] = model(tensors=[tinfo("a", [32], 0, 0), tinfo("b", [32], 0, 96)])
CASES["bad-tensor-name-too-long"] = model(tensors=[tinfo("n" * 100, [32], 0, 0)])
CASES["bad-truncated-directory"] = model()[:len(header(1, 2)) + len(b"".join(BASE_KVS)) + 10]
CASES["bad-truncated-data"] = model()[:-100]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".gguf"):
            os.remove(os.path.join(OUT, name))
    for name, data in CASES.items():
        with open(os.path.join(OUT, name + ".gguf"), "wb") as f:
            f.write(data)
    print(f"wrote {len(CASES)} files to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
