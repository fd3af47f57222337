// Every benchmark reader of data/readers.h, then the prompts of every item read (an item a reader
// accepts must render in both protocols).
// Input: one selector byte, then the file. Selector % 14 picks the reader below; (selector / 14) % 2
// sets ReadOptions::skip_bad. For the readers with a labels file the file is data NUL labels; for
// the generic reader an optional "mapping-spec NUL" comes first.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "data/prompt.h"
#include "data/readers.h"
#include "fuzz_util.h"
#include "io/error.h"

namespace {

using namespace c3po::data;
using c3po::fuzz::put;

ReadResult read(unsigned reader, std::string_view bytes, const ReadOptions& options) {
  auto two = [&] { return c3po::fuzz::split_nul(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 2); };
  switch (reader) {
    case 0: return read_mmlu(put("abstract_algebra_test.csv", bytes), options);
    case 1: return read_stem_choices_jsonl(put("ARC-Challenge-Test.jsonl", bytes), "arc_challenge", 3, 5, options);
    case 2: return read_stem_choices_jsonl(put("dev_rand_split.jsonl", bytes), "commonsense_qa", 5, 5, options);
    case 3: return read_hellaswag(put("hellaswag_val.jsonl", bytes), options);
    case 4: {
      const auto p = two();
      return read_piqa(put("valid.jsonl", p[0]), put("valid-labels.lst", p.size() > 1 ? p[1] : ""), options);
    }
    case 5: {
      const auto p = two();
      std::optional<std::string> labels;
      if (p.size() > 1) labels = put("dev-labels.lst", p[1]);
      return read_winogrande(put("dev.jsonl", p[0]), labels, options);
    }
    case 6: return read_boolq(put("val.jsonl", bytes), options);
    case 7: return read_openbookqa(put("train.jsonl", bytes), options);
    case 8: return read_openbookqa(put("train.tsv", bytes), options);
    case 9: return read_sciq(put("valid.json", bytes), options);
    case 10: {
      const auto p = two();
      return read_social_iqa(put("dev.jsonl", p[0]), put("dev-labels.lst", p.size() > 1 ? p[1] : ""), options);
    }
    case 11: return read_knowref(put("val.json", bytes), options);
    case 12: return read_knowref(put("train.tsv", bytes), options);
    default: {
      const auto p = two();
      if (p.size() == 1) return read_generic(put("generic.jsonl", p[0]), {}, options);
      return read_generic(put("generic.jsonl", p[1]), parse_generic_mapping(p[0]), options);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned reader = data[0] % 14;
  ReadOptions options;
  options.skip_bad = (data[0] / 14) % 2;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto result = read(reader, bytes, options);
    for (const auto& item : result.items) {
      if (item.gold < 0 || static_cast<std::size_t>(item.gold) >= item.choices.size()) __builtin_trap();
      try {
        (void)render_letter_prompt(item);
        (void)render_loglik(item);
      } catch (const c3po::Error&) {
      }
    }
  } catch (const c3po::Error&) {
  }
  return 0;
}
