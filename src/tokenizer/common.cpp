#include <algorithm>

#include "io/error.h"
#include "tokenizer/components.h"

namespace c3po::tokenizer::detail {

Where Where::at(std::string_view key) const {
  return {file, field.empty() ? std::string(key) : field + "." + std::string(key)};
}
Where Where::index(std::size_t i) const { return {file, field + "[" + std::to_string(i) + "]"}; }
void Where::fail(const std::string& problem) const { throw Error(file, field, problem); }

const Json& member(const Json& object, std::string_view key, const Where& where) {
  if (!object.is_object()) where.fail("expected a JSON object");
  const auto it = object.find(key);
  if (it == object.end()) where.at(key).fail("missing");
  return *it;
}

std::string string_member(const Json& object, std::string_view key, const Where& where) {
  const Json& v = member(object, key, where);
  if (!v.is_string()) where.at(key).fail("expected a string, got " + std::string(v.type_name()));
  return v.get<std::string>();
}

std::optional<std::string> optional_string(const Json& object, std::string_view key, const Where& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) where.at(key).fail("expected a string or null, got " + std::string(it->type_name()));
  return it->get<std::string>();
}

bool bool_member(const Json& object, std::string_view key, bool fallback, const Where& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) where.at(key).fail("expected true or false, got " + it->dump());
  return it->get<bool>();
}

std::int64_t int_member(const Json& object, std::string_view key, std::int64_t fallback, const Where& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) where.at(key).fail("expected an integer, got " + it->dump());
  return it->get<std::int64_t>();
}

std::string type_of(const Json& object, const Where& where) {
  if (!object.is_object()) where.fail("expected a JSON object with a \"type\", got " + std::string(object.type_name()));
  return string_member(object, "type", where);
}

void split_piece(const Piece& piece, const std::vector<Span>& spans, SplitBehavior behavior,
                 std::vector<Piece>& out) {
  // (begin, end, remove) after applying the behaviour, as tokenizers' NormalizedString::split.
  struct Cut {
    std::size_t begin, end;
    bool remove;
  };
  std::vector<Cut> cuts;
  cuts.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& s : spans) cuts.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::Removed:
      for (const auto& s : spans) cuts.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::Contiguous:
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !cuts.empty()) cuts.back().end = s.end;
        else cuts.push_back({s.begin, s.end, false});
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !cuts.empty()) cuts.back().end = s.end;
        else cuts.push_back({s.begin, s.end, false});
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !cuts.empty()) cuts.back().begin = it->begin;
        else cuts.push_back({it->begin, it->end, false});
        previous_match = it->is_match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
  }
  for (const auto& c : cuts) {
    if (c.remove || c.begin == c.end) continue;
    out.push_back({piece.text.substr(c.begin, c.end - c.begin), piece.at_origin && c.begin == 0});
  }
}

}  // namespace c3po::tokenizer::detail
