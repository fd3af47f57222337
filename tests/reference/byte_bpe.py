"""A small byte-level BPE (GPT-2 style): training, encoding, and the tokenizer.json layout.

Pre-tokenisation is the GPT-2 regex
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
implemented as a hand-written scanner (Debian's python3 has no `regex` module), with \\p{L} and
\\p{N} decided by unicodedata categories.
"""

import unicodedata

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map, in GPT-2's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return list(zip(bs, [chr(c) for c in cs]))


def _is_letter(ch):
    return unicodedata.category(ch).startswith("L")


def _is_number(ch):
    return unicodedata.category(ch).startswith("N")


def _is_space(ch):
    return ch.isspace()


def _is_other(ch):
    return not (_is_space(ch) or _is_letter(ch) or _is_number(ch))


def pre_tokenize(text):
    """Split text exactly as the GPT-2 regex does (first matching alternative at each position)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        matched = next((len(c) for c in CONTRACTIONS if text.startswith(c, i)), None)
        if matched is None:
            for cls in (_is_letter, _is_number, _is_other):       # " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+"
                j = i + 1 if (text[i] == " " and i + 1 < n and cls(text[i + 1])) else i
                if cls(text[j]):
                    k = j
                    while k < n and cls(text[k]):
                        k += 1
                    matched = k - i
                    break
        if matched is None:
            # only whitespace is left: "\s+(?!\S)" backs off one char before a non-space, else "\s+"
            k = i
            while k < n and _is_space(text[k]):
                k += 1
            matched = k - i - 1 if (k < n and k - i > 1) else k - i
        out.append(text[i:i + matched])
        i += matched
    return out


class ByteBPE:
    def __init__(self, merges, special_tokens=("<|endoftext|>",)):
        table = bytes_to_unicode()
        self.byte_encoder = dict(table)
        self.vocab = {}
        for _, ch in table:
            self.vocab[ch] = len(self.vocab)
        self.merges = list(merges)
        self.ranks = {}
        for rank, (a, b) in enumerate(self.merges):
            self.ranks[(a, b)] = rank
            if a + b not in self.vocab:
                self.vocab[a + b] = len(self.vocab)
        self.special_tokens = list(special_tokens)
        self.special_ids = {}
        for t in self.special_tokens:
            self.vocab[t] = len(self.vocab)
            self.special_ids[t] = self.vocab[t]

    @staticmethod
    def train(text, num_new_tokens):
        """Learn merges until num_new_tokens new vocabulary entries exist: the most frequent adjacent
        pair first, ties broken by the smallest pair (a merge whose result already exists is kept as
        a rule but adds no entry)."""
        enc = dict(bytes_to_unicode())
        known = set(enc.values())
        words = {}
        for piece in pre_tokenize(text):
            key = tuple(enc[b] for b in piece.encode("utf-8"))
            words[key] = words.get(key, 0) + 1
        merges = []
        added = 0
        while added < num_new_tokens:
            counts = {}
            for w, c in words.items():
                for pair in zip(w, w[1:]):
                    counts[pair] = counts.get(pair, 0) + c
            if not counts:
                raise ValueError("training text too small for the requested merges")
            best = min(counts, key=lambda p: (-counts[p], p))
            if best[0] + best[1] not in known:
                known.add(best[0] + best[1])
                added += 1
            merges.append(best)
            words = {_merge_word(w, best): c for w, c in words.items()}
        return merges

    def _bpe(self, symbols):
        symbols = list(symbols)
        while len(symbols) > 1:
            pairs = [(self.ranks.get(p, None), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
            pairs = [(r, i) for r, i in pairs if r is not None]
            if not pairs:
                break
            best_rank = min(r for r, _ in pairs)
            a, b = self.merges[best_rank]
            merged = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def encode(self, text):
        """Token ids of text (special tokens matched literally first, like HF added tokens)."""
        ids = []
        rest = text
        while rest:
            hits = [(rest.find(t), t) for t in self.special_tokens if rest.find(t) >= 0]
            if hits:
                pos, tok = min(hits)
                head, rest = rest[:pos], rest[pos + len(tok):]
            else:
                head, tok, rest = rest, None, ""
            for piece in pre_tokenize(head):
                symbols = [self.byte_encoder[b] for b in piece.encode("utf-8")]
                ids.extend(self.vocab[s] for s in self._bpe(symbols))
            if tok is not None:
                ids.append(self.special_ids[tok])
        return ids

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        byte_decoder = {ch: b for b, ch in self.byte_encoder.items()}
        out = bytearray()
        for i in ids:
            tok = inv[i]
            if tok in self.special_ids:
                out += tok.encode("utf-8")
            else:
                out += bytes(byte_decoder[ch] for ch in tok)
        return out.decode("utf-8", errors="replace")

    def tokenizer_json(self):
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": self.special_ids[t], "content": t, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True}
                for t in self.special_tokens
            ],
            "normalizer": None,
            "pre_tokenizer": byte_level,
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                               "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "",
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                "vocab": self.vocab,
                "merges": [f"{a} {b}" for a, b in self.merges],
            },
        }


def _merge_word(word, pair):
    a, b = pair
    out = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)
