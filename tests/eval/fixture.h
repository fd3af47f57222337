#pragma once
// Shared by the eval tests: a tiny checkpoint whose tokenizer knows the answer letters.
//
// The tiny test tokenizer (tests/model/data/*/tokenizer.json) splits " A" into "Ġ" + "A", which the
// letter protocol rightly refuses. The fixture folder reuses the olmoe weights and a copy
// of its tokenizer in which the last five merges (whose results no other merge uses) become
// "Ġ A" ... "Ġ E", keeping their ids: a valid tokenizer of the same 331 ids. Its config.json
// allows 4096 positions instead of 256.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace c3po::eval::test {

inline std::string shared_data(const std::string& rel) { return std::string(C3PO_SHARED_DIR) + "/data/" + rel; }
inline std::string arc_dev() { return shared_data("arc/ARC-Challenge/ARC-Challenge-Dev.jsonl"); }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string make_temp_dir(const std::string& tag) {
  std::string templ = (std::filesystem::temp_directory_path() / ("c3po-eval-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

// Creates (once per process) and returns the folder of the letter-capable tiny olmoe model.
inline const std::string& letter_model_dir() {
  static const std::string dir = [] {
    const std::string src = std::string(C3PO_SOURCE_DIR) + "/tests/model/data/olmoe";
    const std::string out = make_temp_dir("model");
    namespace fs = std::filesystem;
    // Real benchmark prompts run to ~1000 tokens of this byte-level tokenizer; RoPE needs no table.
    nlohmann::json config = nlohmann::json::parse(read_text(src + "/config.json"));
    config["max_position_embeddings"] = 4096;
    std::ofstream(out + "/config.json") << config.dump(2);
    fs::create_symlink(src + "/model.safetensors", out + "/model.safetensors");
    nlohmann::json tj = nlohmann::json::parse(read_text(src + "/tokenizer.json"));
    auto& merges = tj["model"]["merges"];
    auto& vocab = tj["model"]["vocab"];
    const std::vector<std::string> letters{"A", "B", "C", "D", "E"};
    std::vector<std::string> removed;
    std::vector<int> ids;
    for (std::size_t k = 0; k < letters.size(); ++k) {
      std::string m = merges.back().get<std::string>();
      merges.erase(merges.size() - 1);
      const std::string merged = m.substr(0, m.find(' ')) + m.substr(m.find(' ') + 1);
      ids.insert(ids.begin(), vocab.at(merged).get<int>());
      removed.push_back(merged);
      vocab.erase(merged);
    }
    for (const auto& m : merges) {
      const std::string s = m.get<std::string>();
      for (const auto& r : removed)
        if (s.substr(0, s.find(' ')) == r || s.substr(s.find(' ') + 1) == r)
          throw std::runtime_error("fixture: merge " + s + " uses a removed token");
    }
    for (std::size_t k = 0; k < letters.size(); ++k) {
      merges.push_back("\xC4\xA0 " + letters[k]);  // "Ġ A"
      vocab["\xC4\xA0" + letters[k]] = ids[k];
    }
    std::ofstream(out + "/tokenizer.json") << tj.dump();
    return out;
  }();
  return dir;
}

}  // namespace c3po::eval::test
