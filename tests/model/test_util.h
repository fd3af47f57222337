#pragma once
// Shared helpers of the model tests: the tiny reference checkpoints and their expectations.
#include <torch/torch.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace c3po::model::test {

inline std::string data_dir() { return std::string(C3PO_SOURCE_DIR) + "/tests/model/data"; }
inline std::string model_dir(const std::string& arch) { return data_dir() + "/" + arch; }

inline const std::vector<std::string>& architectures() {
  static const std::vector<std::string> a{"olmoe", "qwen2_moe", "qwen3_moe", "mixtral", "deepseek"};
  return a;
}

// The reference outputs of one architecture (tests/model/data/<arch>/expected.safetensors).
class Expected {
 public:
  explicit Expected(const std::string& arch) : file_(model_dir(arch) + "/expected.safetensors") {}

  bool has(const std::string& name) const { return file_.find(name) != nullptr; }
  torch::Tensor get(const std::string& name) const {
    const io::TensorView* v = file_.find(name);
    if (!v) throw std::runtime_error("expected.safetensors has no " + name);
    auto dtype = v->dtype == io::DType::I64 ? torch::kInt64 : torch::kFloat32;
    if (v->dtype != io::DType::I64 && v->dtype != io::DType::F32)
      throw std::runtime_error(name + ": unexpected dtype");
    auto t = torch::empty(v->shape, dtype);
    std::memcpy(t.data_ptr(), v->data, v->nbytes);
    return t;
  }
  torch::Tensor get(int c, const std::string& what) const { return get("case" + std::to_string(c) + "." + what); }
  int num_cases() const {
    int n = 0;
    while (has("case" + std::to_string(n) + ".input_ids")) ++n;
    return n;
  }
  std::vector<int64_t> ids(int c) const { return to_vector(get(c, "input_ids")); }

  static std::vector<int64_t> to_vector(const torch::Tensor& t) {
    auto c = t.to(torch::kInt64).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  }

 private:
  io::SafetensorsFile file_;
};

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// A fresh temporary folder removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("c3po_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace c3po::model::test
