// Broken copies of the tiny checkpoints: every problem is a c3po::Error naming the tensor or field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include <sys/stat.h>

#include "io/error.h"
#include "io/json_file.h"
#include "model/config.h"
#include "model/engine.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

namespace fs = std::filesystem;

// Copies tests/model/data/<arch> into a temp dir, rewriting model.safetensors through `edit`,
// which may drop or change entries of the tensor list.
void broken_copy(const std::string& arch, const fs::path& dir,
                 const std::function<void(std::vector<io::TensorData>&)>& edit) {
  fs::copy_file(model_dir(arch) + "/config.json", dir / "config.json");
  io::SafetensorsFile src(model_dir(arch) + "/model.safetensors");
  std::vector<io::TensorData> tensors;
  for (const auto& t : src.tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
  edit(tensors);
  io::write_safetensors((dir / "model.safetensors").string(), tensors);
}

// Loads and expects an Error whose message names `needle`.
void expect_load_error(const fs::path& dir, const std::string& needle, const std::string& also = "") {
  try {
    MoeModel::load(dir.string(), Dtype::F32);
    ADD_FAILURE() << "no error, expected one naming " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    if (!also.empty()) {
      EXPECT_NE(std::string(e.what()).find(also), std::string::npos) << e.what();
    }
  }
}

const char* kExpert = "model.layers.2.mlp.experts.3.up_proj.weight";

TEST(BrokenCheckpoint, IntactCopyLoads) {
  TempDir tmp;
  broken_copy("olmoe", tmp.path, [](auto&) {});
  EXPECT_EQ(MoeModel::load(tmp.path.string(), Dtype::F32)->fingerprint(),
            MoeModel::load(model_dir("olmoe"), Dtype::F32)->fingerprint());
}

// A store built on one model must not be accepted for another: changing any single weight of the
// tiny checkpoints (every tensor under 1 MiB is hashed whole) changes the fingerprint.
TEST(Fingerprint, ChangesWhenAnyOneWeightChanges) {
  const auto base = MoeModel::load(model_dir("olmoe"), Dtype::F32)->fingerprint();
  std::mt19937_64 rng(17);
  io::SafetensorsFile src(model_dir("olmoe") + "/model.safetensors");
  for (int trial = 0; trial < 12; ++trial) {
    const auto& victim = src.tensors()[rng() % src.tensors().size()];
    const std::size_t element = rng() % (victim.nbytes / 4);
    TempDir tmp;
    std::vector<unsigned char> changed;
    broken_copy("olmoe", tmp.path, [&](std::vector<io::TensorData>& tensors) {
      for (auto& t : tensors)
        if (t.name == victim.name) {
          changed.assign(static_cast<const unsigned char*>(t.data), static_cast<const unsigned char*>(t.data) + t.nbytes);
          float v;
          std::memcpy(&v, changed.data() + 4 * element, 4);
          v = std::nextafter(v, 1e30f);  // the smallest possible change
          std::memcpy(changed.data() + 4 * element, &v, 4);
          t.data = changed.data();
        }
    });
    EXPECT_NE(MoeModel::load(tmp.path.string(), Dtype::F32)->fingerprint(), base)
        << victim.name << " element " << element;
  }
}

// Above 1 MiB a tensor is sampled in 64 windows that include its first and last bytes: the tiny
// OLMoE with a 5000-token vocabulary has 1.2 MiB embedding and LM-head matrices.
TEST(Fingerprint, LargeTensorsAreSampledFromFirstToLastByte) {
  auto json = io::read_json_file(model_dir("olmoe") + "/config.json");
  json["vocab_size"] = 5000;
  const auto config = parse_config("config.json", json.dump());
  io::SafetensorsFile src(model_dir("olmoe") + "/model.safetensors");
  std::map<std::string, torch::Tensor> tensors;
  torch::manual_seed(3);
  for (const auto& t : src.tensors()) {
    auto shape = t.shape;
    if (t.name == "lm_head.weight" || t.name == "model.embed_tokens.weight") shape[0] = 5000;
    tensors[t.name] = torch::randn(shape) * 0.02;
  }
  const auto fp = [&](const std::map<std::string, torch::Tensor>& t) {
    return MoeModel::from_tensors(config, t, Dtype::F32)->fingerprint();
  };
  const auto base = fp(tensors);
  for (const auto& name : {std::string("lm_head.weight"), std::string("model.embed_tokens.weight")}) {
    ASSERT_GT(tensors[name].nbytes(), std::size_t{1} << 20);
    for (int64_t at : {int64_t{0}, tensors[name].numel() - 1}) {
      auto changed = tensors;
      changed[name] = tensors[name].clone();
      changed[name].view({-1})[at] += 1e-3f;
      EXPECT_NE(fp(changed), base) << name << " element " << at;
    }
  }
}

// Decoding past max_position_embeddings (256 for the tiny OLMoE) is a clear error, never positions
// the model was not trained for.
TEST(ContextLength, DecodeAndGenerateStopAtTheModelsLength) {
  auto m = MoeModel::load(model_dir("olmoe"), Dtype::F32);
  const int64_t max = m->config().max_position_embeddings;
  ASSERT_EQ(max, 256);
  std::vector<int64_t> prompt(static_cast<std::size_t>(max - 2), 7);
  try {
    m->generate(prompt, 10);  // needs 256 + 8 positions
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings"), std::string::npos) << e.what();
  }
  EXPECT_EQ(m->generate(prompt, 3).size(), 3u);  // 254 + 2 decoded = 256 positions: fine
  KvCache cache;
  m->decode(cache, prompt);
  m->decode(cache, {1, 2});
  EXPECT_THROW(m->decode(cache, {3}), Error);
}

// A pipe in place of an input file would block the read for ever; it is refused by name at once.
TEST(Inputs, PipesAndFoldersAreRefusedBeforeOpening) {
  TempDir tmp;
  fs::copy_file(model_dir("olmoe") + "/config.json", tmp.path / "config.json");
  ASSERT_EQ(::mkfifo((tmp.path / "model.safetensors").c_str(), 0600), 0);
  try {
    MoeModel::load(tmp.path.string(), Dtype::F32);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  TempDir other;
  ASSERT_EQ(::mkfifo((other.path / "config.json").c_str(), 0600), 0);
  EXPECT_THROW(load_config(other.path.string()), Error);
  EXPECT_THROW(io::read_json_file((other.path / "config.json").string()), Error);
  fs::create_directories(other.path / "folder.json");
  EXPECT_THROW(io::read_json_file((other.path / "folder.json").string()), Error);
}

// JSON syntax errors are reported in c3po's words: file, line, column, what was wrong.
TEST(Inputs, JsonSyntaxErrorsNameLineAndColumn) {
  TempDir tmp;
  std::ofstream((tmp.path / "bad.json").string()) << "{\"a\": 1,\n \"b\": }";
  try {
    io::read_json_file((tmp.path / "bad.json").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find("[json.exception"), std::string::npos) << m;
    EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
    EXPECT_NE(m.find("line 2, column"), std::string::npos) << m;
  }
}

// A config with fewer layers than the checkpoint would silently run a truncated model.
TEST(BrokenCheckpoint, ConfigWithFewerLayersThanTheCheckpoint) {
  TempDir tmp;
  broken_copy("olmoe", tmp.path, [](auto&) {});
  auto config = io::read_json_file((tmp.path / "config.json").string());
  const int layers = config["num_hidden_layers"].get<int>();
  config["num_hidden_layers"] = layers - 1;
  io::write_json_file((tmp.path / "config.json").string(), config);
  expect_load_error(tmp.path, "num_hidden_layers = " + std::to_string(layers - 1),
                    "model.layers." + std::to_string(layers - 1) + ".");
}

TEST(BrokenCheckpoint, MissingTensor) {
  TempDir tmp;
  broken_copy("olmoe", tmp.path, [](std::vector<io::TensorData>& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](const auto& t) { return t.name == kExpert; }), ts.end());
  });
  expect_load_error(tmp.path, kExpert);
}

TEST(BrokenCheckpoint, MissingBiasOfQwen2) {
  TempDir tmp;
  const std::string bias = "model.layers.1.self_attn.k_proj.bias";
  broken_copy("qwen2_moe", tmp.path, [&](std::vector<io::TensorData>& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const auto& t) { return t.name == bias; }), ts.end());
  });
  expect_load_error(tmp.path, bias);
}

TEST(BrokenCheckpoint, WrongShape) {
  TempDir tmp;
  broken_copy("olmoe", tmp.path, [](std::vector<io::TensorData>& ts) {
    for (auto& t : ts)
      if (t.name == kExpert) t.shape = {t.shape[1], t.shape[0]};  // same bytes, transposed shape
  });
  expect_load_error(tmp.path, kExpert, "expected shape [20,64]");
}

TEST(BrokenCheckpoint, WrongDtype) {
  TempDir tmp;
  broken_copy("mixtral", tmp.path, [](std::vector<io::TensorData>& ts) {
    for (auto& t : ts)
      if (t.name == "model.norm.weight") t.dtype = io::DType::I32;  // same size per element
  });
  expect_load_error(tmp.path, "model.norm.weight", "I32");
}

TEST(BrokenCheckpoint, HalfPrecisionTensorIsConverted) {
  // A tensor stored in another floating dtype is not an error: it is converted.
  TempDir tmp;
  std::vector<uint16_t> bf16;
  broken_copy("olmoe", tmp.path, [&](std::vector<io::TensorData>& ts) {
    for (auto& t : ts)
      if (t.name == "model.norm.weight") {
        const float* f = reinterpret_cast<const float*>(t.data);
        for (std::size_t i = 0; i < t.nbytes / 4; ++i) {
          uint32_t u;
          std::memcpy(&u, f + i, 4);
          bf16.push_back(static_cast<uint16_t>(u >> 16));
        }
        t.dtype = io::DType::BF16;
        t.data = bf16.data();
        t.nbytes = bf16.size() * 2;
      }
  });
  auto m = MoeModel::load(tmp.path.string(), Dtype::F32);
  auto ref = MoeModel::load(model_dir("olmoe"), Dtype::F32);
  // Truncating the final norm to bf16 moves the logits a little, not a lot.
  const double d = max_abs_diff(m->forward({{1, 2, 3}}).logits, ref->forward({{1, 2, 3}}).logits);
  EXPECT_GT(d, 0.0);
  EXPECT_LT(d, 0.1);
}

TEST(BrokenCheckpoint, UnknownArchitecture) {
  TempDir tmp;
  broken_copy("olmoe", tmp.path, [](auto&) {});
  auto cfg = io::read_json_file((tmp.path / "config.json").string());
  cfg["model_type"] = "gpt_oss";
  io::write_json_file((tmp.path / "config.json").string(), cfg);
  try {
    MoeModel::load(tmp.path.string(), Dtype::F32);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "model_type");
    EXPECT_EQ(e.file(), (tmp.path / "config.json").string());
    EXPECT_NE(std::string(e.what()).find("gpt_oss"), std::string::npos);
  }
}

TEST(BrokenCheckpoint, MissingConfigField) {
  TempDir tmp;
  broken_copy("deepseek", tmp.path, [](auto&) {});
  auto cfg = io::read_json_file((tmp.path / "config.json").string());
  cfg.erase("n_routed_experts");
  io::write_json_file((tmp.path / "config.json").string(), cfg);
  try {
    MoeModel::load(tmp.path.string(), Dtype::F32);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "n_routed_experts");
  }
}

TEST(BrokenCheckpoint, ConfigDisagreesWithWeights) {
  // More experts in the config than in the checkpoint: the first tensor that disagrees is named.
  TempDir tmp;
  broken_copy("olmoe", tmp.path, [](auto&) {});
  auto cfg = io::read_json_file((tmp.path / "config.json").string());
  cfg["num_experts"] = 13;
  io::write_json_file((tmp.path / "config.json").string(), cfg);
  expect_load_error(tmp.path, "model.layers.0.mlp.gate.weight", "expected shape [13,64], got [12,64]");
}

}  // namespace
}  // namespace c3po::model::test
