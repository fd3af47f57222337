#pragma once
// The benchmark text: 1 MiB of English multiple-choice prompts built from the real ARC files, in a
// fixed order. bench/tokenizer/node_speed.js builds the same bytes for the reference library.
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace c3po::bench {

inline std::string arc_prompt_text(std::size_t bytes = 1 << 20) {
  const std::string dir = std::string(C3PO_SHARED_DIR) + "/data/arc/";
  const char* files[] = {"ARC-Challenge/ARC-Challenge-Train.jsonl", "ARC-Easy/ARC-Easy-Train.jsonl",
                         "ARC-Challenge/ARC-Challenge-Dev.jsonl", "ARC-Easy/ARC-Easy-Dev.jsonl"};
  std::string text;
  while (text.size() < bytes) {
    for (const char* f : files) {
      std::ifstream in(dir + f);
      if (!in) throw std::runtime_error("cannot read " + dir + f);
      std::string line;
      while (std::getline(in, line) && text.size() < bytes) {
        const auto d = nlohmann::json::parse(line);
        text += "Question: " + d["question"]["stem"].get<std::string>() + "\n";
        for (const auto& c : d["question"]["choices"])
          text += c["label"].get<std::string>() + ". " + c["text"].get<std::string>() + "\n";
        text += "Answer: " + d["answerKey"].get<std::string>() + "\n\n";
      }
    }
  }
  std::size_t cut = bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters only
  text.resize(cut);
  return text;
}

}  // namespace c3po::bench
