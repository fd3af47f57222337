#include "remix/embedder.h"

#include <cctype>

#include "embed/sentence_encoder.h"
#include "io/error.h"
#include "io/hash.h"
#include "model/engine.h"

namespace c3po::remix {

torch::Tensor HashedNgramEmbedder::embed(const std::vector<std::string>& texts) const {
  auto out = torch::zeros({static_cast<int64_t>(texts.size()), dim_});
  auto acc = out.accessor<float, 2>();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    // ASCII lower-casing and splitting on non-alphanumerics: bytes >= 0x80 stay inside words.
    std::string norm;
    for (unsigned char c : texts[i]) norm.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c));
    std::vector<std::string> words;
    std::string cur;
    for (unsigned char c : norm) {
      if (c >= 0x80 || std::isalnum(c)) {
        cur.push_back(static_cast<char>(c));
      } else if (!cur.empty()) {
        words.push_back(cur);
        cur.clear();
      }
    }
    if (!cur.empty()) words.push_back(cur);
    auto add = [&](std::string_view feature, uint64_t salt, float w) {
      const uint64_t h = io::fnv1a64(feature, io::Fnv1a64::kC3poBasis ^ salt);
      acc[i][static_cast<int64_t>(h % static_cast<uint64_t>(dim_))] += (h >> 63) ? w : -w;
    };
    for (std::size_t w = 0; w < words.size(); ++w) {
      add(words[w], 1, 1.0f);
      if (w + 1 < words.size()) add(words[w] + " " + words[w + 1], 2, 1.0f);
      const std::string padded = " " + words[w] + " ";
      for (std::size_t c = 0; c + 3 <= padded.size(); ++c) add(std::string_view(padded).substr(c, 3), 3, 0.5f);
    }
  }
  return out / out.norm(2, 1, true).clamp_min(1e-12);
}

EmbedderChoice EmbedderChoice::parse(const std::string& spec) {
  EmbedderChoice e;
  auto value_of = [&](const std::string& prefix) -> std::optional<int> {
    if (spec.rfind(prefix, 0) != 0) return std::nullopt;
    try {
      std::size_t used = 0;
      const auto s = spec.substr(prefix.size());
      int v = std::stoi(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
    throw Error("", "embedder", "expected an integer after \"" + prefix + "\" in \"" + spec + "\"");
  };
  if (spec == "model") return e;
  if (auto v = value_of("model:layer=")) {
    e.layer = *v;
    return e;
  }
  if (spec.rfind("bert:", 0) == 0) {
    e.kind = Kind::Sentence;
    e.folder = spec.substr(5);
    if (e.folder.empty()) throw Error("", "embedder", "bert: needs a sentence-transformers folder, e.g. bert:all-MiniLM-L6-v2");
    return e;
  }
  e.kind = Kind::Hash;
  if (spec == "hash") return e;
  if (auto v = value_of("hash:dim=")) {
    if (*v < 8) throw Error("", "embedder", "the hashed embedder needs at least 8 dimensions");
    e.hash_dim = *v;
    return e;
  }
  throw Error("", "embedder",
              "unknown embedder \"" + spec + "\" (expected model, model:layer=N, hash, hash:dim=N or bert:FOLDER)");
}

int EmbedderChoice::resolved_layer(const model::MoeModel& model) const {
  const int n = static_cast<int>(model.config().num_layers);
  const int l = layer < 0 ? n / 2 : layer;
  if (l >= n)
    throw Error("", "embedder", "layer " + std::to_string(l) + " does not exist: the model has " + std::to_string(n) +
                                      " decoder layers");
  return l;
}

TextEmbedder::TextEmbedder(const EmbedderChoice& choice, const model::MoeModel& model)
    : choice_(choice), hasher_(choice.hash_dim) {
  switch (choice.kind) {
    case EmbedderChoice::Kind::ModelLayer:
      layer_ = choice.resolved_layer(model);
      identity_ = "model:layer=" + std::to_string(layer_);
      break;
    case EmbedderChoice::Kind::Hash:
      identity_ = hasher_.name();
      break;
    case EmbedderChoice::Kind::Sentence: {
      embed::EncoderOptions eo;
      eo.always_normalize = true;  // the neighbour search is on cosine similarity
      std::shared_ptr<embed::SentenceEncoder> enc = embed::SentenceEncoder::load(choice.folder, eo);
      identity_ = enc->name();
      encoder_ = std::static_pointer_cast<const void>(std::shared_ptr<const embed::SentenceEncoder>(enc));
      break;
    }
  }
}

TextEmbedder::~TextEmbedder() = default;

torch::Tensor TextEmbedder::embed(const std::vector<std::string>& texts) const {
  switch (choice_.kind) {
    case EmbedderChoice::Kind::Hash: return hasher_.embed(texts);
    case EmbedderChoice::Kind::Sentence: {
      torch::NoGradGuard no_grad;
      auto v = static_cast<const embed::SentenceEncoder*>(encoder_.get())->encode(texts).to(torch::kFloat);
      return v / v.norm(2, 1, true).clamp_min(1e-12);
    }
    case EmbedderChoice::Kind::ModelLayer: break;
  }
  throw Error("", "embedder", "the model embedder takes its vectors from the forward pass, not from text");
}

std::string embedding_text(const data::McItem& item) {
  std::string s = item.question;
  for (const auto& c : item.choices) s += "\n" + c;
  return s;
}

}  // namespace c3po::remix
