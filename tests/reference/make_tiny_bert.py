"""Generate a tiny random BERT sentence-transformers folder and its expected embeddings.

    /usr/bin/python3 tests/reference/make_tiny_bert.py [--out tests/embed/data/tiny-bert]

The folder has the layout of sentence-transformers/all-MiniLM-L6-v2 as downloaded: config.json
(model_type bert), model.safetensors (BertModel names, no prefix, F32, with the unused pooler),
tokenizer.json (BertNormalizer lowercase, BertPreTokenizer, WordPiece, TemplateProcessing
[CLS] $A [SEP]), tokenizer_config.json, special_tokens_map.json, vocab.txt, sentence_bert_config.json
(max_seq_length 16), modules.json (Transformer, 1_Pooling, 2_Normalize) and 1_Pooling/config.json
(mean pooling). expected.safetensors holds, from tests/reference/bert_reference.py in float64 and
stored as F32, for SENTENCES encoded in one padded batch:
    ids.<i>              the token ids of sentence i (I32) after truncation
    <pooling>            [N, D] normalised embeddings for each pooling variant (POOLINGS)
    mean.unnormalized    mean pooling without the Normalize module
and the sentences as JSON in the metadata key "sentences". Seeded: a rerun reproduces the files.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert_reference import POOLING_KEYS, SentenceBert, write_safetensors  # noqa: E402

HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POSITIONS, TYPE_VOCAB = 32, 2, 4, 37, 64, 2
MAX_SEQ_LENGTH = 16

SENTENCES = [
    "The cat sat on the mat.",
    "  A quick brown fox jumps over the lazy dog!  ",
    "Café naïve résumé",
    "I like smørrebrød and 猫.",
    "Hello",
    "This is a long sentence that goes beyond the maximum length of sixteen tokens, so the model must "
    "truncate it before running.",
    "Running jumped embeddings, (quickly)?",
]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """the a an of and or to in on at is are was be it this that with for as by from not but
cat dog fox mat sat quick brown jump over lazy hello world cafe naive resume i like long sentence goes
beyond maximum length six token so model must run it before what which who when where how why
question answer true false yes no water sun moon tree river city house good bad big small old new red
blue green black white one two three four five ten day night time year people man woman child
emb trunc""".split()
PIECES = "##s ##ed ##ing ##ning ##ly ##er ##est ##teen ##bed ##ding ##ate ##tion".split()
PUNCTUATION = list(".,!?;:'\"()-")


def build_vocab():
    tokens = SPECIALS + PUNCTUATION + [str(d) for d in range(10)]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    for w in WORDS + PIECES:
        if w not in tokens:
            tokens.append(w)
    return {t: i for i, t in enumerate(tokens)}


def tokenizer_json(vocab):
    special = lambda t: {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                         "normalized": False, "special": True}
    return {
        "version": "1.0",
        # As real files carry them (all-MiniLM-L6-v2: 128, fixed padding); transformers replaces both
        # by the call's settings, so max_seq_length (16) decides, not these 8.
        "truncation": {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                    "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [special(t) for t in SPECIALS],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def make_weights(vocab_size, seed):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    def near_one(n):
        return 1.0 + randn(n, std=0.2)

    w = {
        "embeddings.word_embeddings.weight": randn(vocab_size, HIDDEN),
        "embeddings.position_embeddings.weight": randn(MAX_POSITIONS, HIDDEN, std=0.5),
        "embeddings.token_type_embeddings.weight": randn(TYPE_VOCAB, HIDDEN, std=0.5),
        "embeddings.LayerNorm.weight": near_one(HIDDEN),
        "embeddings.LayerNorm.bias": randn(HIDDEN, std=0.1),
        "pooler.dense.weight": randn(HIDDEN, HIDDEN, std=0.2),
        "pooler.dense.bias": randn(HIDDEN, std=0.1),
    }
    linears = {"attention.self.query": (HIDDEN, HIDDEN), "attention.self.key": (HIDDEN, HIDDEN),
               "attention.self.value": (HIDDEN, HIDDEN), "attention.output.dense": (HIDDEN, HIDDEN),
               "intermediate.dense": (INTERMEDIATE, HIDDEN), "output.dense": (HIDDEN, INTERMEDIATE)}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name, (out_f, in_f) in linears.items():
            # Query/key a little larger than 1/sqrt(in) so attention is far from uniform.
            gain = 2.0 if name in ("attention.self.query", "attention.self.key") else 1.0
            w[p + name + ".weight"] = randn(out_f, in_f, std=gain / in_f ** 0.5)
            w[p + name + ".bias"] = randn(out_f, std=0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"] = near_one(HIDDEN)
            w[p + ln + ".bias"] = randn(HIDDEN, std=0.1)
    return {k: v.float().contiguous() for k, v in w.items()}


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


POOLINGS = {
    "mean": ["pooling_mode_mean_tokens"],
    "cls": ["pooling_mode_cls_token"],
    "max": ["pooling_mode_max_tokens"],
    "mean_sqrt_len": ["pooling_mode_mean_sqrt_len_tokens"],
    "weightedmean": ["pooling_mode_weightedmean_tokens"],
    "lasttoken": ["pooling_mode_lasttoken"],
    "cls+max+mean": ["pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens"],
}


def pooling_config(keys):
    cfg = {"word_embedding_dimension": HIDDEN}
    cfg.update({k: k in keys for k in POOLING_KEYS})
    cfg["include_prompt"] = True
    return cfg


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "embed", "data", "tiny-bert"))
    out = ap.parse_args().out
    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)

    vocab = build_vocab()
    # layer_norm_eps 1e-3 rather than BERT's 1e-12, so that a reader ignoring it misses by > 1e-5.
    write_json(os.path.join(out, "config.json"), {
        "_name_or_path": "tiny-bert", "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None, "gradient_checkpointing": False, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": HIDDEN, "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE, "layer_norm_eps": 1e-3, "max_position_embeddings": MAX_POSITIONS,
        "model_type": "bert", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "pad_token_id": 0,
        "position_embedding_type": "absolute", "torch_dtype": "float32", "transformers_version": "4.39.3",
        "type_vocab_size": TYPE_VOCAB, "use_cache": True, "vocab_size": len(vocab)})
    write_json(os.path.join(out, "tokenizer.json"), tokenizer_json(vocab))
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "do_basic_tokenize": True,
        "do_lower_case": True, "mask_token": "[MASK]", "model_max_length": 512, "never_split": None,
        "pad_token": "[PAD]", "sep_token": "[SEP]", "strip_accents": None, "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]"})
    write_json(os.path.join(out, "special_tokens_map.json"), {
        "cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
        "unk_token": "[UNK]"})
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    write_json(os.path.join(out, "sentence_bert_config.json"),
               {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    write_json(os.path.join(out, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    write_json(os.path.join(out, "1_Pooling", "config.json"), pooling_config(POOLINGS["mean"]))
    write_safetensors(os.path.join(out, "model.safetensors"), make_weights(len(vocab), seed=20261128),
                      metadata={"format": "pt"})

    model = SentenceBert(out)
    expected = {}
    for i, s in enumerate(SENTENCES):
        expected[f"ids.{i}"] = torch.tensor(model.token_ids(s), dtype=torch.int32)
    unk = vocab["[UNK]"]
    assert any(unk in model.token_ids(s) for s in SENTENCES), "no sentence has an unknown word"
    assert max(len(model.token_ids(s)) for s in SENTENCES) == MAX_SEQ_LENGTH, "no sentence is truncated"
    for name, keys in POOLINGS.items():
        batch = model.encode(SENTENCES, pooling=pooling_config(keys))
        # Padding must not change anything: the padded batch equals one sentence at a time.
        single = torch.cat([model.encode([s], pooling=pooling_config(keys)) for s in SENTENCES])
        assert torch.allclose(batch, single, atol=1e-10), name
        f32 = model.encode(SENTENCES, pooling=pooling_config(keys), dtype=torch.float32)
        assert torch.allclose(batch, f32.double(), atol=2e-6), (name, (batch - f32.double()).abs().max())
        expected[name] = batch.float()
    expected["mean.unnormalized"] = model.encode(SENTENCES, normalize=False).float()
    write_safetensors(os.path.join(out, "expected.safetensors"), expected,
                      metadata={"sentences": json.dumps(SENTENCES, ensure_ascii=False)})
    for i, s in enumerate(SENTENCES):
        print(i, [t for t in model.token_ids(s)])


if __name__ == "__main__":
    main()
