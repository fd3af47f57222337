// SentenceEncoder against tests/reference/bert_reference.py: the tiny random BERT folder and the
// embeddings the reference computed for it (tests/reference/make_tiny_bert.py), plus layout variants
// and bad folders built from it in a temporary directory.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "embed/sentence_encoder.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using c3po::embed::EncoderOptions;
using c3po::embed::Pooling;
using c3po::embed::SentenceEncoder;
using nlohmann::json;

namespace {

const std::string kTiny = C3PO_SOURCE_DIR "/tests/embed/data/tiny-bert";
constexpr double kTol = 1e-5;

class Expected {
 public:
  Expected() : file_(kTiny + "/expected.safetensors") {}
  std::vector<std::string> sentences() const {
    return json::parse(file_.metadata().at("sentences")).get<std::vector<std::string>>();
  }
  at::Tensor tensor(const std::string& name) const {
    const auto* v = file_.find(name);
    if (!v) throw std::runtime_error("expected.safetensors has no " + name);
    EXPECT_EQ(v->dtype, c3po::io::DType::F32);
    at::Tensor t = at::empty(v->shape, at::kFloat);
    std::memcpy(t.data_ptr(), v->data, v->nbytes);
    return t;
  }
  std::vector<std::int32_t> ids(std::size_t i) const {
    const auto* v = file_.find("ids." + std::to_string(i));
    std::vector<std::int32_t> out(v->nbytes / 4);
    std::memcpy(out.data(), v->data, v->nbytes);
    return out;
  }

 private:
  c3po::io::SafetensorsFile file_;
};

// A fresh copy of the tiny folder under a per-test temporary directory.
std::string copy_tiny(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::temp_directory_path() / ("c3po-embed-" + std::to_string(::getpid())) /
                       (std::string(info->name()) + "-" + tag) / "tiny-bert";
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  fs::copy(kTiny, dir, fs::copy_options::recursive);
  fs::remove(dir / "expected.safetensors");
  return dir.string();
}

json pooling_config(const std::vector<std::string>& enabled) {
  json j = {{"word_embedding_dimension", 32}, {"include_prompt", true}};
  for (const char* k : {"pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                        "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                        "pooling_mode_lasttoken"})
    j[k] = std::find(enabled.begin(), enabled.end(), k) != enabled.end();
  return j;
}

// The weights of the tiny folder as owned tensors, renamed and optionally altered, written back.
struct Weights {
  std::vector<std::string> names;
  std::vector<c3po::io::DType> dtypes;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<std::byte>> bytes;

  explicit Weights(const std::string& path) {
    c3po::io::SafetensorsFile f(path);
    for (const auto& t : f.tensors()) {
      names.push_back(t.name);
      dtypes.push_back(t.dtype);
      shapes.push_back(t.shape);
      bytes.emplace_back(t.data, t.data + t.nbytes);
    }
  }
  std::size_t index(const std::string& name) const {
    return std::find(names.begin(), names.end(), name) - names.begin();
  }
  std::vector<c3po::io::TensorData> data() const {
    std::vector<c3po::io::TensorData> out;
    for (std::size_t i = 0; i < names.size(); ++i)
      out.push_back({names[i], dtypes[i], shapes[i], bytes[i].data(), bytes[i].size()});
    return out;
  }
  void write(const std::string& path) const { c3po::io::write_safetensors(path, data()); }
};

template <class T, class V>
EncoderOptions options_with(T EncoderOptions::*member, V value) {
  EncoderOptions o;
  o.*member = value;
  return o;
}

void expect_close(const at::Tensor& got, const at::Tensor& want, double tol = kTol) {
  ASSERT_EQ(got.sizes(), want.sizes());
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, tol) << "max abs difference " << diff;
}

// Runs f and expects a c3po::Error whose file and field contain the given parts.
template <class F>
void expect_error(F&& f, const std::string& file_part, const std::string& field_part) {
  try {
    f();
    ADD_FAILURE() << "no c3po::Error (expected one about " << file_part << " / " << field_part << ")";
  } catch (const c3po::Error& e) {
    EXPECT_NE(e.file().find(file_part), std::string::npos) << e.what();
    EXPECT_NE(e.field().find(field_part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(SentenceEncoder, TokenIdsMatchReferenceIncludingAccentsUnknownWordsAndTruncation) {
  Expected ex;
  auto enc = SentenceEncoder::load(kTiny);
  EXPECT_EQ(enc->max_seq_length(), 16);
  const auto sentences = ex.sentences();
  ASSERT_EQ(sentences.size(), 7u);
  const auto ids = enc->token_ids(sentences);
  for (std::size_t i = 0; i < sentences.size(); ++i) EXPECT_EQ(ids[i], ex.ids(i)) << sentences[i];
  EXPECT_EQ(ids[5].size(), 16u);  // the long sentence, cut to max_seq_length with its [SEP] kept
}

TEST(SentenceEncoder, MeanPoolingWithNormalizeMatchesReference) {
  Expected ex;
  auto enc = SentenceEncoder::load(kTiny);
  EXPECT_EQ(enc->dim(), 32);
  EXPECT_TRUE(enc->normalizes());
  EXPECT_EQ(enc->pooling(), std::vector<Pooling>{Pooling::Mean});
  const at::Tensor got = enc->encode(ex.sentences());
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  expect_close(got, ex.tensor("mean"));
  expect_close(got.norm(2, at::IntArrayRef{1}), at::ones({got.size(0)}), 1e-6);
}

TEST(SentenceEncoder, EveryPoolingModeMatchesReference) {
  Expected ex;
  const std::vector<std::pair<std::string, std::vector<std::string>>> variants = {
      {"cls", {"pooling_mode_cls_token"}},
      {"max", {"pooling_mode_max_tokens"}},
      {"mean_sqrt_len", {"pooling_mode_mean_sqrt_len_tokens"}},
      {"weightedmean", {"pooling_mode_weightedmean_tokens"}},
      {"lasttoken", {"pooling_mode_lasttoken"}},
      {"cls+max+mean", {"pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens"}},
  };
  for (const auto& [name, keys] : variants) {
    SCOPED_TRACE(name);
    const std::string dir = copy_tiny(name);
    c3po::io::write_json_file(dir + "/1_Pooling/config.json", pooling_config(keys));
    auto enc = SentenceEncoder::load(dir);
    EXPECT_EQ(enc->dim(), 32 * static_cast<int>(keys.size()));
    expect_close(enc->encode(ex.sentences(), 4), ex.tensor(name));
  }
}

TEST(SentenceEncoder, WithoutNormalizeModuleRowsKeepTheirLengthUnlessAsked) {
  Expected ex;
  const std::string dir = copy_tiny("nonorm");
  json modules = c3po::io::read_json_file(dir + "/modules.json");
  modules.erase(2);
  c3po::io::write_json_file(dir + "/modules.json", modules);
  auto raw = SentenceEncoder::load(dir);
  EXPECT_FALSE(raw->normalizes());
  expect_close(raw->encode(ex.sentences()), ex.tensor("mean.unnormalized"));
  auto unit = SentenceEncoder::load(dir, options_with(&EncoderOptions::always_normalize, true));
  EXPECT_TRUE(unit->normalizes());
  expect_close(unit->encode(ex.sentences()), ex.tensor("mean"));
  EXPECT_NE(raw->name(), unit->name());
}

TEST(SentenceEncoder, BatchSizeAndOrderDoNotChangeRows) {
  Expected ex;
  auto enc = SentenceEncoder::load(kTiny);
  const auto sentences = ex.sentences();
  const at::Tensor all = enc->encode(sentences, 32);
  for (int batch : {1, 2, 3}) expect_close(enc->encode(sentences, batch), all, 1e-6);
  for (std::size_t i = 0; i < sentences.size(); ++i) expect_close(enc->encode({sentences[i]}, 1)[0], all[i], 1e-6);
  std::vector<std::string> reversed(sentences.rbegin(), sentences.rend());
  expect_close(enc->encode(reversed, 2).flip({0}), all, 1e-6);
  for (int per_forward : {1, 20, 40}) {  // one text per forward; one or two 16-token texts; mixed
    auto limited = SentenceEncoder::load(kTiny, options_with(&EncoderOptions::tokens_per_forward, per_forward));
    expect_close(limited->encode(sentences, 32), all, 1e-6);
  }
}

TEST(SentenceEncoder, EmptyInputsAreHandled) {
  auto enc = SentenceEncoder::load(kTiny);
  const at::Tensor none = enc->encode({});
  EXPECT_EQ(none.sizes(), (std::vector<int64_t>{0, 32}));
  const at::Tensor blank = enc->encode({"", "   "});
  EXPECT_TRUE(blank.isfinite().all().item<bool>());
  expect_close(blank[0], blank[1], 0.0);  // both are [CLS] [SEP] after stripping
  EXPECT_EQ(enc->token_ids({"  "})[0], (std::vector<std::int32_t>{2, 3}));
}

TEST(SentenceEncoder, SubfolderLayoutPrefixedShardedAndTensorFlowNamesGiveTheSameEmbeddings) {
  Expected ex;
  const std::string dir = copy_tiny("layout");
  // Old sentence-transformers layout: the transformer in 0_Transformer/, weights named bert.*, with
  // the LayerNorm parameters called gamma/beta, sharded.
  const fs::path sub = fs::path(dir) / "0_Transformer";
  fs::create_directories(sub);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "vocab.txt", "sentence_bert_config.json"})
    fs::rename(fs::path(dir) / f, sub / f);
  Weights w(dir + "/model.safetensors");
  fs::remove(fs::path(dir) / "model.safetensors");
  for (auto& n : w.names) {
    n = "bert." + n;
    if (n.size() > 16 && n.compare(n.size() - 16, 16, "LayerNorm.weight") == 0) n.replace(n.size() - 6, 6, "gamma");
    if (n.size() > 14 && n.compare(n.size() - 14, 14, "LayerNorm.bias") == 0) n.replace(n.size() - 4, 4, "beta");
  }
  c3po::io::write_safetensors_sharded(sub.string(), w.data(), 30000);
  ASSERT_TRUE(fs::exists(sub / "model.safetensors.index.json"));
  json modules = c3po::io::read_json_file(dir + "/modules.json");
  modules[0]["path"] = "0_Transformer";
  c3po::io::write_json_file(dir + "/modules.json", modules);

  auto enc = SentenceEncoder::load(dir);
  EXPECT_EQ(enc->max_seq_length(), 16);
  expect_close(enc->encode(ex.sentences()), ex.tensor("mean"));
}

TEST(SentenceEncoder, NameIsStableAndTracksWeightsAndPooling) {
  auto a = SentenceEncoder::load(kTiny);
  auto b = SentenceEncoder::load(kTiny + "/");
  EXPECT_EQ(a->name(), b->name());
  EXPECT_TRUE(std::regex_match(a->name(), std::regex("bert:tiny-bert:[0-9a-f]{16}"))) << a->name();

  const std::string changed = copy_tiny("weights");
  Weights w(changed + "/model.safetensors");
  // The last float of the last layer's output LayerNorm bias: a tensor's tail is in the sample.
  auto& bias = w.bytes[w.index("encoder.layer.1.output.LayerNorm.bias")];
  float v;
  std::memcpy(&v, bias.data() + bias.size() - 4, 4);
  v += 0.5f;
  std::memcpy(bias.data() + bias.size() - 4, &v, 4);
  w.write(changed + "/model.safetensors");
  EXPECT_NE(SentenceEncoder::load(changed)->name(), a->name());

  const std::string pooled = copy_tiny("pooling");
  c3po::io::write_json_file(pooled + "/1_Pooling/config.json", pooling_config({"pooling_mode_cls_token"}));
  EXPECT_NE(SentenceEncoder::load(pooled)->name(), a->name());
  EXPECT_NE(SentenceEncoder::load(kTiny, options_with(&EncoderOptions::max_seq_length, std::optional<int>(8)))->name(), a->name());
}

TEST(SentenceEncoder, MaxSeqLengthOptionTruncatesKeepingSep) {
  Expected ex;
  auto enc = SentenceEncoder::load(kTiny, options_with(&EncoderOptions::max_seq_length, std::optional<int>(5)));
  const auto ids = enc->token_ids({ex.sentences()[0], "Hello"});
  auto full = ex.ids(0);
  std::vector<std::int32_t> want(full.begin(), full.begin() + 4);
  want.push_back(full.back());
  EXPECT_EQ(ids[0], want);
  EXPECT_EQ(ids[1], ex.ids(4));  // short enough already
}

TEST(SentenceEncoder, PlainTransformerFolderGetsMeanPoolingWithoutNormalize) {
  Expected ex;
  const std::string dir = copy_tiny("plain");
  fs::remove(dir + "/modules.json");
  fs::remove_all(dir + "/1_Pooling");
  auto enc = SentenceEncoder::load(dir);
  EXPECT_FALSE(enc->normalizes());
  expect_close(enc->encode(ex.sentences()), ex.tensor("mean.unnormalized"));
}

TEST(SentenceEncoderErrors, MissingFolderAndFiles) {
  expect_error([] { SentenceEncoder::load(kTiny + "/no-such-folder"); }, "no-such-folder", "");
  for (const char* f : {"config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json"}) {
    SCOPED_TRACE(f);
    const std::string dir = copy_tiny(fs::path(f).filename().string() + std::to_string(std::strlen(f)));
    fs::remove(fs::path(dir) / f);
    try {
      SentenceEncoder::load(dir);
      ADD_FAILURE() << "loaded without " << f;
    } catch (const c3po::Error& e) {
      const std::string where = e.file() + " " + e.field() + " " + e.problem();
      EXPECT_NE(where.find(fs::path(f).filename().string() == "model.safetensors" ? "model.safetensors"
                                                                                   : fs::path(f).filename().string()),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(SentenceEncoderErrors, BadPoolingConfigs) {
  const std::string dir = copy_tiny("pool");
  const std::string file = dir + "/1_Pooling/config.json";
  json j = pooling_config({"pooling_mode_mean_tokens"});
  j["pooling_mode_median_tokens"] = true;
  c3po::io::write_json_file(file, j);
  expect_error([&] { SentenceEncoder::load(dir); }, "1_Pooling/config.json", "pooling_mode_median_tokens");

  c3po::io::write_json_file(file, pooling_config({}));
  expect_error([&] { SentenceEncoder::load(dir); }, "1_Pooling/config.json", "pooling_mode_");

  j = pooling_config({"pooling_mode_mean_tokens"});
  j["pooling_mode_mean_tokens"] = "yes";
  c3po::io::write_json_file(file, j);
  expect_error([&] { SentenceEncoder::load(dir); }, "1_Pooling/config.json", "pooling_mode_mean_tokens");

  j = pooling_config({"pooling_mode_mean_tokens"});
  j["word_embedding_dimension"] = 64;
  c3po::io::write_json_file(file, j);
  expect_error([&] { SentenceEncoder::load(dir); }, "1_Pooling/config.json", "word_embedding_dimension");
}

TEST(SentenceEncoderErrors, UnsupportedModulesAndModels) {
  const std::string dir = copy_tiny("modules");
  json modules = c3po::io::read_json_file(dir + "/modules.json");
  modules.insert(modules.begin() + 2, json{{"idx", 2}, {"name", "2"}, {"path", "2_Dense"},
                                           {"type", "sentence_transformers.models.Dense"}});
  c3po::io::write_json_file(dir + "/modules.json", modules);
  expect_error([&] { SentenceEncoder::load(dir); }, "modules.json", "[2].type");

  const std::string cfg_dir = copy_tiny("config");
  const json original = c3po::io::read_json_file(cfg_dir + "/config.json");
  const std::vector<std::pair<std::string, json>> bad = {
      {"model_type", "roberta"},        {"hidden_act", "quick_gelu"},
      {"num_attention_heads", 5},       {"position_embedding_type", "relative_key"},
      {"hidden_size", -32},             {"max_position_embeddings", 8},
  };
  for (const auto& [key, value] : bad) {
    SCOPED_TRACE(key);
    json cfg = original;
    cfg[key] = value;
    c3po::io::write_json_file(cfg_dir + "/config.json", cfg);
    // max_position_embeddings 8 is below max_seq_length 16: reported against sentence_bert_config.json.
    if (key == "max_position_embeddings")
      expect_error([&] { SentenceEncoder::load(cfg_dir); }, "sentence_bert_config.json", "max_seq_length");
    else
      expect_error([&] { SentenceEncoder::load(cfg_dir); }, "config.json", key);
  }
}

TEST(SentenceEncoderErrors, WrongTensorShapeOrDtypeNamesTheTensor) {
  const std::string dir = copy_tiny("shape");
  Weights w(dir + "/model.safetensors");
  const std::size_t i = w.index("encoder.layer.1.intermediate.dense.weight");
  w.shapes[i] = {w.shapes[i][1], w.shapes[i][0]};  // transposed: same bytes, wrong shape
  w.write(dir + "/model.safetensors");
  expect_error([&] { SentenceEncoder::load(dir); }, "model.safetensors", "encoder.layer.1.intermediate.dense.weight");

  Weights w2(kTiny + "/model.safetensors");
  const std::size_t j = w2.index("embeddings.LayerNorm.bias");
  w2.dtypes[j] = c3po::io::DType::I32;
  w2.write(dir + "/model.safetensors");
  expect_error([&] { SentenceEncoder::load(dir); }, "model.safetensors", "embeddings.LayerNorm.bias");

  Weights w3(kTiny + "/model.safetensors");
  const std::size_t k = w3.index("encoder.layer.0.attention.self.key.bias");
  w3.names.erase(w3.names.begin() + k);
  w3.dtypes.erase(w3.dtypes.begin() + k);
  w3.shapes.erase(w3.shapes.begin() + k);
  w3.bytes.erase(w3.bytes.begin() + k);
  w3.write(dir + "/model.safetensors");
  expect_error([&] { SentenceEncoder::load(dir); }, "model.safetensors", "encoder.layer.0.attention.self.key.bias");
}

TEST(SentenceEncoderErrors, BadLengthsAndBatch) {
  const std::string dir = copy_tiny("len");
  c3po::io::write_json_file(dir + "/sentence_bert_config.json", json{{"max_seq_length", 0}});
  expect_error([&] { SentenceEncoder::load(dir); }, "sentence_bert_config.json", "max_seq_length");
  expect_error([&] { SentenceEncoder::load(kTiny, options_with(&EncoderOptions::max_seq_length, std::optional<int>(65))); }, "", "max_seq_length");
  expect_error([&] { SentenceEncoder::load(kTiny, options_with(&EncoderOptions::max_seq_length, std::optional<int>(2))); }, "", "max_seq_length");
  expect_error([&] { SentenceEncoder::load(kTiny, options_with(&EncoderOptions::tokens_per_forward, 0)); }, "", "tokens_per_forward");
  auto enc = SentenceEncoder::load(kTiny);
  expect_error([&] { enc->encode({"a"}, 0); }, "", "batch");
  // Invalid UTF-8 is refused by the tokenizer, not embedded as garbage.
  EXPECT_THROW(enc->encode({std::string("caf\xC3", 4)}), c3po::Error);
}
