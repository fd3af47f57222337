"""Independent plain-PyTorch reference for BERT-family sentence-transformers folders.

Written from Hugging Face transformers' models/bert/modeling_bert.py (BertEmbeddings, BertSelfAttention,
BertSelfOutput, BertIntermediate, BertOutput: post-LN encoder, erf GELU, absolute positions,
token_type_ids = 0, additive attention mask of finfo.min on padding), sentence-transformers'
models/Transformer.py (strip, optional lower-casing, truncation to max_seq_length including the
special tokens), models/Pooling.py (cls, max, mean, mean_sqrt_len, weightedmean, lasttoken,
concatenated in that order) and models/Normalize.py (F.normalize). The tokenizer is the subset of
tokenizer.json a BERT checkpoint uses (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] $A [SEP]),
written from the Rust tokenizers sources. It never looks at the C++ code.

    /usr/bin/python3 tests/reference/bert_reference.py FOLDER "some text" ["more text" ...]

prints the embeddings. The computation runs in float64 unless told otherwise.
"""

import json
import math
import os
import struct
import sys
import unicodedata

import torch
import torch.nn.functional as F

_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(blob[8 + n + begin:8 + n + end])
        dtype = _ST_DTYPES[info["dtype"]]
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors, header.get("__metadata__", {})


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------------------------
# Tokenizer: the BERT subset of tokenizer.json.

# Unicode White_Space (what Rust's char::is_whitespace tests).
_WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | \
    set(range(0x2000, 0x200B))


def _is_whitespace(c):
    return c in "\t\n\r" or ord(c) in _WHITE_SPACE


def _is_control(c):
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


def _is_punctuation(c):
    o = ord(c)
    ascii_punct = 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126
    return ascii_punct or unicodedata.category(c).startswith("P")


def _is_chinese(c):
    o = ord(c)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF or 0x2A700 <= o <= 0x2B73F
            or 0x2B740 <= o <= 0x2B81F or 0x2B920 <= o <= 0x2CEAF or 0xF900 <= o <= 0xFAFF or 0x2F800 <= o <= 0x2FA1F)


class WordPieceTokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        norm, pre, model, post = j["normalizer"], j["pre_tokenizer"], j["model"], j["post_processor"]
        if norm["type"] != "BertNormalizer" or pre["type"] != "BertPreTokenizer" or model["type"] != "WordPiece":
            raise ValueError(f"{path}: only BertNormalizer + BertPreTokenizer + WordPiece are modelled here")
        self.clean_text = norm.get("clean_text", True)
        self.chinese = norm.get("handle_chinese_chars", True)
        self.lowercase = norm.get("lowercase", True)
        sa = norm.get("strip_accents")
        self.strip_accents = self.lowercase if sa is None else sa
        self.vocab = model["vocab"]
        self.unk = model["unk_token"]
        self.prefix = model.get("continuing_subword_prefix", "##")
        self.max_chars = model.get("max_input_chars_per_word", 100)
        if post["type"] == "TemplateProcessing":
            single = post["single"]
            specials = post["special_tokens"]
            self.before, self.after, seen = [], [], False
            for piece in single:
                if "Sequence" in piece:
                    seen = True
                else:
                    ids = specials[piece["SpecialToken"]["id"]]["ids"]
                    (self.after if seen else self.before).extend(ids)
        elif post["type"] == "BertProcessing":
            self.before, self.after = [post["cls"][1]], [post["sep"][1]]
        else:
            raise ValueError(f"{path}: post_processor {post['type']} not modelled")

    def normalize(self, text):
        if self.clean_text:
            text = "".join(" " if _is_whitespace(c) else c for c in text
                           if not (ord(c) == 0 or ord(c) == 0xFFFD or _is_control(c)))
        if self.chinese:
            text = "".join(f" {c} " if _is_chinese(c) else c for c in text)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            text = text.lower()
        return text

    @staticmethod
    def pre_tokenize(text):
        words, cur = [], ""
        for c in text:
            if _is_whitespace(c):
                if cur:
                    words.append(cur)
                cur = ""
            elif _is_punctuation(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
        return words

    def word_pieces(self, word):
        if len(word) > self.max_chars:
            return [self.vocab[self.unk]]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.vocab[self.unk]]
            ids.append(found)
            start = end
        return ids

    def encode(self, text, max_length=None):
        """[CLS] pieces [SEP], the pieces cut so that the whole fits max_length (truncation right)."""
        ids = [i for w in self.pre_tokenize(self.normalize(text)) for i in self.word_pieces(w)]
        if max_length is not None:
            ids = ids[:max(0, max_length - len(self.before) - len(self.after))]
        return self.before + ids + self.after


# ---------------------------------------------------------------------------------------------
# The sentence-transformers pipeline.

POOLING_KEYS = ["pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens",
                "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]


class SentenceBert:
    def __init__(self, folder):
        with open(os.path.join(folder, "modules.json")) as f:
            modules = json.load(f)
        self.normalize = False
        self.pooling = None
        tdir = folder
        for m in modules:
            kind = m["type"].rsplit(".", 1)[-1]
            if kind == "Transformer":
                tdir = os.path.join(folder, m["path"])
            elif kind == "Pooling":
                with open(os.path.join(folder, m["path"], "config.json")) as f:
                    self.pooling = json.load(f)
            elif kind == "Normalize":
                self.normalize = True
            else:
                raise ValueError(f"module {m['type']} not modelled")
        with open(os.path.join(tdir, "config.json")) as f:
            self.cfg = json.load(f)
        with open(os.path.join(tdir, "sentence_bert_config.json")) as f:
            st = json.load(f)
        self.max_seq_length = st["max_seq_length"]
        self.do_lower_case = st.get("do_lower_case", False)
        self.tokenizer = WordPieceTokenizer(os.path.join(tdir, "tokenizer.json"))
        weights, _ = read_safetensors(os.path.join(tdir, "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.W = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}

    def token_ids(self, text):
        text = text.strip()
        if self.do_lower_case:
            text = text.lower()
        return self.tokenizer.encode(text, self.max_seq_length)

    def token_embeddings(self, ids, mask, dtype):
        """BertModel's last_hidden_state for a padded batch ids [B, L] with attention mask [B, L]."""
        cfg = self.cfg
        W = {k: v.to(dtype) for k, v in self.W.items() if v.is_floating_point()}
        H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
        hd = H // nh
        eps = cfg.get("layer_norm_eps", 1e-12)
        B, L = ids.shape

        def ln(x, name):
            return F.layer_norm(x, (H,), W[name + ".weight"], W[name + ".bias"], eps)

        def lin(x, name):
            return F.linear(x, W[name + ".weight"], W[name + ".bias"])

        token_type = torch.zeros_like(ids)
        positions = torch.arange(L).unsqueeze(0).expand(B, L)
        x = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.token_type_embeddings.weight"][token_type]
             + W["embeddings.position_embeddings.weight"][positions])
        x = ln(x, "embeddings.LayerNorm")
        extended = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        act = {"gelu": lambda t: F.gelu(t), "relu": F.relu,
               "gelu_new": lambda t: F.gelu(t, approximate="tanh")}[cfg.get("hidden_act", "gelu")]
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."

            def heads(t):
                return t.view(B, L, nh, hd).permute(0, 2, 1, 3)

            q = heads(lin(x, p + "attention.self.query"))
            k = heads(lin(x, p + "attention.self.key"))
            v = heads(lin(x, p + "attention.self.value"))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + extended
            probs = torch.softmax(scores, dim=-1)
            context = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, L, H)
            attn = ln(lin(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            inner = act(lin(attn, p + "intermediate.dense"))
            x = ln(lin(inner, p + "output.dense") + attn, p + "output.LayerNorm")
        return x

    def pool(self, tokens, mask, pooling):
        out = []
        m = mask.unsqueeze(-1).to(tokens.dtype)
        if pooling.get("pooling_mode_cls_token"):
            out.append(tokens[:, 0])
        if pooling.get("pooling_mode_max_tokens"):
            out.append(tokens.masked_fill(m == 0, -1e9).max(dim=1).values)
        if pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_mean_sqrt_len_tokens"):
            total = (tokens * m).sum(1)
            count = torch.clamp(m.sum(1), min=1e-9)
            if pooling.get("pooling_mode_mean_tokens"):
                out.append(total / count)
            if pooling.get("pooling_mode_mean_sqrt_len_tokens"):
                out.append(total / torch.sqrt(count))
        if pooling.get("pooling_mode_weightedmean_tokens"):
            w = m * torch.arange(1, tokens.shape[1] + 1, dtype=tokens.dtype).view(1, -1, 1)
            out.append((tokens * w).sum(1) / torch.clamp(w.sum(1), min=1e-9))
        if pooling.get("pooling_mode_lasttoken"):
            last = mask.sum(1).long() - 1
            out.append(tokens[torch.arange(tokens.shape[0]), last])
        return torch.cat(out, dim=1)

    def encode(self, texts, pooling=None, normalize=None, dtype=torch.float64):
        """[N, D] embeddings of texts, all in one padded batch."""
        pooling = self.pooling if pooling is None else pooling
        normalize = self.normalize if normalize is None else normalize
        seqs = [self.token_ids(t) for t in texts]
        L = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), L, dtype=torch.long)
        mask = torch.zeros(len(seqs), L, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        with torch.no_grad():
            emb = self.pool(self.token_embeddings(ids, mask, dtype), mask, pooling)
            if normalize:
                emb = F.normalize(emb, p=2, dim=1)
        return emb


def main():
    model = SentenceBert(sys.argv[1])
    torch.set_printoptions(precision=6, linewidth=160)
    for text, e in zip(sys.argv[2:], model.encode(sys.argv[2:])):
        print(repr(text), model.token_ids(text))
        print(e)


if __name__ == "__main__":
    main()
