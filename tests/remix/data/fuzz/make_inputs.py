#!/usr/bin/env python3
"""Writes the reference-store inputs of test_store_inputs.cpp from a valid store (the fuzz seed
fuzz/corpus/store/demo: 4 references of the demo model, hash:dim=16 embedder), each with a true
checksum so that the loader gets past it. Run from the repository root."""
import json
import struct

M = (1 << 64) - 1
NAMES = ["embeddings", "pathways", "gold", "base_loss", "correct", "source", "item_offsets", "items"]


def mix(x):
    x ^= x >> 32
    x = (x * 0xD6E8FEB86659FD93) & M
    return x ^ (x >> 32)


def checksum64(data, seed):  # remix::checksum64
    n = len(data)
    h = seed ^ ((0x9E3779B97F4A7C15 * (n + 1)) & M)
    i = 0
    while i + 8 <= n:
        (w,) = struct.unpack_from("<Q", data, i)
        h = ((h ^ mix((w + 0x9E3779B97F4A7C15) & M)) * 0xFF51AFD7ED558CCD) & M
        i += 8
    tail = int.from_bytes(data[i:], "little")
    h = ((h ^ mix((tail + n) & M)) * 0xC4CEB9FE1A85EC53) & M
    return mix(h)


def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", raw)
    return json.loads(raw[8:8 + n]), bytearray(raw[8 + n:])


def save(path, header, buf):
    s = 0
    for name in NAMES:
        b, e = header[name]["data_offsets"]
        s = checksum64(bytes(buf[b:e]), s)
    header["__metadata__"]["checksum"] = "%016x" % s
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + bytes(buf))


seed = "fuzz/corpus/store/demo"
out = "tests/remix/data/fuzz/"
# The valid store itself: with 4 references its item_offsets start at byte 804 of the data, not a
# multiple of 8 (c3po writes tensors without padding between them).
h, b = load(seed)
save(out + "unaligned-offsets.store", h, b)

# Item offsets that do not rise: item 0's bytes are stored last and its range is given as
# [its start, 2^40). The file is padded (spaces inside item 0) to end on a page boundary, so that
# reading item 0 ran off the end of the mapping: `c3po remix` with this store quoted bytes from
# beyond the file in its error (and would crash where the next page is unmapped).
def offsets_past_end(pad):
    h, b = load(seed)
    ob, oe = h["item_offsets"]["data_offsets"]
    ib, ie = h["items"]["data_offsets"]
    assert ie == len(b) and oe == ib  # items are the last tensor, right after the offsets
    lines = bytes(b[ib:ie]).splitlines(keepends=True)
    assert len(lines) == 4
    lines[0] = lines[0][:-2] + b" " * pad + b"}\n"
    items = lines[1] + lines[2] + lines[3] + lines[0]
    off = [len(items) - len(lines[0]), 1 << 40, 0, 0, len(items)]
    struct.pack_into("<5q", b, ob, *off)
    b = b[:ib] + items
    h["items"]["data_offsets"] = [ib, ib + len(items)]
    h["items"]["shape"] = [len(items)]
    path = out + "offsets-past-end.store"
    save(path, h, b)
    return len(open(path, "rb").read())


pad = 0
while (size := offsets_past_end(pad)) % 4096:
    pad += 4096 - size % 4096


# item_offsets stored as F64 (same size): was read as int64 regardless, or failed in LibTorch.
h, b = load(seed)
h["item_offsets"]["dtype"] = "F64"
save(out + "offsets-f64.store", h, b)

# source as F32: NaN dataset indices ended in a LibTorch conversion error.
h, b = load(seed)
h["source"]["dtype"] = "F32"
o = h["source"]["data_offsets"][0]
struct.pack_into("<f", b, o, float("nan"))
save(out + "source-f32.store", h, b)

# An item whose gold is a number beyond a double: the parse error (out_of_range, not parse_error)
# escaped item() as a bare nlohmann exception.
h, b = load(seed)
ob, oe = h["item_offsets"]["data_offsets"]
ib, ie = h["items"]["data_offsets"]
lines = bytes(b[ib:ie]).splitlines(keepends=True)
gold = json.loads(lines[0])["gold"]
lines[0] = lines[0].replace(b'"gold":%d' % gold, b'"gold":7E777', 1)
assert b"7E777" in lines[0]
items = b"".join(lines)
off = [0]
for line in lines:
    off.append(off[-1] + len(line))
struct.pack_into("<5q", b, ob, *off)
b = b[:ib] + items
h["items"]["data_offsets"] = [ib, ib + len(items)]
h["items"]["shape"] = [len(items)]
save(out + "item-number-overflow.store", h, b)
