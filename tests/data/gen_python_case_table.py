#!/usr/bin/python3
"""Writes python_capitalize_table.tsv: CPython's own str.capitalize() on every assigned code point,
alone (titlecase, first position) and after "A" (lowercase, later position), for the code points
where either result differs from the input. The C++ test compares python_capitalize() with it.
Run: /usr/bin/python3 tests/data/gen_python_case_table.py > tests/data/python_capitalize_table.tsv"""
import sys
import unicodedata

print("# CPython %d.%d, Unicode %s: code point, capitalize(ch), capitalize('A' + ch)[1:]"
      % (sys.version_info[0], sys.version_info[1], unicodedata.unidata_version))
for c in range(0x110000):
    if 0xD800 <= c < 0xE000:
        continue
    ch = chr(c)
    if unicodedata.category(ch) == "Cn":
        continue
    first = ch.capitalize()
    later = ("A" + ch).capitalize()[1:]
    if first != ch or later != ch:
        print("%X\t%s\t%s" % (c, " ".join("%X" % ord(x) for x in first),
                              " ".join("%X" % ord(x) for x in later)))
