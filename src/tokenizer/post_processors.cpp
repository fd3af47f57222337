// Post-processors of tokenizer.json for a single sequence (tokenizers/src/processors/*).
#include "tokenizer/components.h"

namespace c3po::tokenizer::detail {

namespace {

class Template final : public PostProcessor {
 public:
  Template(std::vector<std::int32_t> prefix, std::vector<std::int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void process(std::vector<std::int32_t>& ids) const override {
    ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
    ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  }

 private:
  std::vector<std::int32_t> prefix_, suffix_;
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> items) : items_(std::move(items)) {}
  void process(std::vector<std::int32_t>& ids) const override {
    for (const auto& p : items_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::int32_t token_pair_id(const Json& j, std::string_view key, const Where& where) {
  const Json& pair = member(j, key, where);
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_number_integer())
    where.at(key).fail("expected [\"token\", id], got " + pair.dump());
  return pair[1].get<std::int32_t>();
}

std::unique_ptr<PostProcessor> make_template_processing(const Json& j, const Where& where) {
  const Json& single = member(j, "single", where);
  const Where ws = where.at("single");
  if (!single.is_array()) ws.fail("expected a list of {\"SpecialToken\"} / {\"Sequence\"} items");
  const Json& specials = member(j, "special_tokens", where);
  if (!specials.is_object()) where.at("special_tokens").fail("expected an object");
  std::vector<std::int32_t> prefix, suffix;
  bool seen_sequence = false;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const Json& item = single[i];
    const Where wi = ws.index(i);
    if (item.contains("Sequence")) {
      const std::string id = string_member(member(item, "Sequence", wi), "id", wi.at("Sequence"));
      if (id != "A" || seen_sequence) wi.fail("a single-sequence template must contain $A exactly once");
      seen_sequence = true;
    } else if (item.contains("SpecialToken")) {
      const std::string name = string_member(member(item, "SpecialToken", wi), "id", wi.at("SpecialToken"));
      const auto it = specials.find(name);
      if (it == specials.end()) where.at("special_tokens").fail("no entry for \"" + name + "\" used in single");
      const Json& ids = member(*it, "ids", where.at("special_tokens").at(name));
      if (!ids.is_array()) where.at("special_tokens").at(name).at("ids").fail("expected a list of ids");
      for (const auto& id : ids) {
        if (!id.is_number_integer()) where.at("special_tokens").at(name).at("ids").fail("expected integer ids");
        (seen_sequence ? suffix : prefix).push_back(id.get<std::int32_t>());
      }
    } else {
      wi.fail("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, got " + item.dump());
    }
  }
  if (!seen_sequence) ws.fail("the template has no $A");
  return std::make_unique<Template>(std::move(prefix), std::move(suffix));
}

}  // namespace

std::unique_ptr<PostProcessor> make_template(std::vector<std::int32_t> prefix, std::vector<std::int32_t> suffix) {
  return std::make_unique<Template>(std::move(prefix), std::move(suffix));
}

std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, where);
  if (type == "TemplateProcessing") return make_template_processing(j, where);
  if (type == "ByteLevel") return nullptr;  // changes offsets only
  if (type == "BertProcessing" || type == "RobertaProcessing")
    return make_template({token_pair_id(j, "cls", where)}, {token_pair_id(j, "sep", where)});
  if (type == "Sequence") {
    const Json& list = member(j, "processors", where);
    if (!list.is_array()) where.at("processors").fail("expected an array");
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (auto p = make_post_processor(list[i], where.at("processors").index(i))) items.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(items));
  }
  where.at("type").fail("unsupported post_processor type \"" + type +
                        "\" (supported: TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)");
}

}  // namespace c3po::tokenizer::detail
