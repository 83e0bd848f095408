#!/usr/bin/env python3
"""Writes the regression corpus of tests/fuzz_reader.rs into this folder.

Each file breaks one rule the profile reader (src/pprof/decode.rs) enforces;
files named `valid-*` are edge cases it must accept. The output is
deterministic (gzip with mtime 0), so rerunning this changes nothing unless
the cases change: `python3 tests/data/fuzz/generate.py`.
"""

import gzip
import os
import random


def varint(n):
    n &= (1 << 64) - 1  # negative int64 values are ten-byte two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def num(field, n):
    return key(field, 0) + varint(n) if n else b""


def ld(field, payload):
    return key(field, 2) + varint(len(payload)) + payload


def packed(field, values):
    return ld(field, b"".join(varint(v) for v in values)) if values else b""


def value_type(type_, unit):
    return num(1, type_) + num(2, unit)


def sample(locations, values, labels=()):
    return packed(1, locations) + packed(2, values) + b"".join(ld(3, l) for l in labels)


def label(key_, str_=0, num_=0, unit=0):
    return num(1, key_) + num(2, str_) + num(3, num_) + num(4, unit)


def mapping(id_, filename=0, build_id=0):
    return num(1, id_) + num(5, filename) + num(6, build_id)


def location(id_, mapping_id, function_ids):
    lines = b"".join(ld(4, num(1, f) + num(2, 3)) for f in function_ids)
    return num(1, id_) + num(2, mapping_id) + lines


def function(id_, name):
    return num(1, id_) + num(2, name)


def profile(
    sample_types=((1, 2),),
    samples=(([1], [10]),),
    mappings=(1,),
    locations=((1, 1, [1]),),
    functions=((1, 3),),
    strings=("", "space", "bytes", "main"),
    extra=b"",
):
    """The valid profile of tests/fuzz_reader.rs, with any part replaced."""
    out = b"".join(ld(1, value_type(*vt)) for vt in sample_types)
    out += b"".join(ld(2, sample(*s)) for s in samples)
    out += b"".join(ld(3, mapping(m)) for m in mappings)
    out += b"".join(ld(4, location(*l)) for l in locations)
    out += b"".join(ld(5, function(*f)) for f in functions)
    out += b"".join(ld(6, s.encode()) for s in strings)
    return out + extra


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


VALID = profile()

CASES = {
    # Edge cases that must decode.
    "valid-minimal.pb": VALID,
    "valid-minimal.pb.gz": gz(VALID),
    "valid-two-gzip-members.pb.gz": gz(VALID[:20]) + gz(VALID[20:]),
    "valid-empty-string-table.pb": profile(
        sample_types=[(0, 0)], samples=[([], [5])], mappings=[], locations=[],
        functions=[], strings=[],
    ),
    "valid-sparse-ids.pb": profile(
        samples=[([2**64 - 1], [10])], locations=[(2**64 - 1, 1, [1])],
    ),
    "valid-recursive-stack.pb": profile(
        samples=[([1, 2] * 50, [10])], locations=[(1, 1, [1]), (2, 1, [1])],
    ),
    # 200 KB of two-byte empty samples: accepted, and each one costs the
    # reader far more memory than its two bytes.
    "valid-100000-empty-samples.pb.gz": gz(b"\x12\x00" * 100_000),
    # Invalid UTF-8 in the string table: pprof reads it, and so does
    # heapprof, with U+FFFD for the bad bytes.
    "valid-string-not-utf8.pb": profile(strings=["", "space", "bytes"], extra=ld(6, b"\xff\xfe")),
    # The gzip layer.
    "empty.pb": b"",
    "gzip-header-only.pb.gz": gz(VALID)[:10],
    "gzip-truncated.pb.gz": gz(VALID)[: len(gz(VALID)) // 2],
    "gzip-no-trailer.pb.gz": gz(VALID)[:-8],
    "gzip-bad-crc.pb.gz": gz(VALID)[:-8] + b"\0\0\0\0" + gz(VALID)[-4:],
    "gzip-magic-then-garbage.pb.gz": b"\x1f\x8bgarbage, not deflate",
    "gzip-of-nothing.pb.gz": gz(b""),
    "gzip-of-garbage.pb.gz": gz(random.Random(7).randbytes(200)),
    # 256 KiB of zeros in 300 bytes: inflates a thousandfold, to bytes
    # that are not protobuf (field number 0).
    "gzip-of-zeros-1000x.pb.gz": gz(bytes(256 << 10)),
    # The protobuf layer.
    "garbage.pb": b"this is not a profile\n",
    "varint-truncated.pb": VALID + key(9, 0) + b"\xff\xff",
    "varint-eleven-bytes.pb": VALID + key(9, 0) + b"\xff" * 10 + b"\x01",
    "length-past-end.pb": VALID + key(6, 2) + varint(50) + b"abc",
    "length-4gib.pb": VALID + key(2, 2) + varint(0xFFFFFFFF),
    "packed-length-past-end.pb": profile(extra=ld(2, key(1, 2) + varint(40) + b"\x01\x02")),
    "wrong-wire-type.pb": key(1, 0) + varint(1) + VALID,
    "unmatched-end-group.pb": VALID + key(100, 4),
    "nested-groups-200-deep.pb": VALID + key(100, 3) * 200 + key(100, 4) * 200,
    "nested-groups-unterminated.pb": VALID + key(100, 3),
    # The rules of the format.
    "string-index-out-of-range.pb": profile(functions=[(1, 99)]),
    "string-index-negative.pb": profile(sample_types=[(1, -1)]),
    "string-index-huge.pb": profile(sample_types=[(2**62, 2)]),
    "string-table-empty-index-1.pb": profile(strings=[]),
    "string-zero-not-empty.pb": profile(strings=["x", "space", "bytes", "main"]),
    "label-key-out-of-range.pb": profile(samples=[([1], [10], [label(40, num_=1)])]),
    "label-value-out-of-range.pb": profile(samples=[([1], [10], [label(1, str_=40)])]),
    "comment-out-of-range.pb": profile(extra=packed(13, [9])),
    "period-type-out-of-range.pb": profile(extra=ld(11, value_type(1, 77))),
    "default-sample-type-out-of-range.pb": profile(extra=num(14, 12)),
    "location-id-missing.pb": profile(samples=[([7], [10])]),
    "function-id-missing.pb": profile(locations=[(1, 1, [9])]),
    "mapping-id-missing.pb": profile(locations=[(1, 5, [1])]),
    "location-id-zero.pb": profile(samples=[([0], [10])], locations=[(0, 1, [1])]),
    "function-id-duplicate.pb": profile(functions=[(1, 3), (1, 3)]),
    "mapping-id-duplicate-sparse.pb": profile(mappings=[2**40, 2**40], locations=[(1, 0, [1])]),
    "sample-value-count-mismatch.pb": profile(samples=[([1], [1, 2, 3])]),
    "sample-no-values.pb": profile(samples=[([1], [])]),
    "value-sum-overflow.pb": profile(samples=[([1], [-(2**63)])] * 3),
}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for name, data in CASES.items():
        with open(os.path.join(here, name), "wb") as f:
            f.write(data)
