#include "eval/settings.h"

#include <utility>

#include "data/registry.h"
#include "io/error.h"

namespace c3po::eval {

Protocol parse_protocol(const std::string& name) {
  if (name == "letter") return Protocol::Letter;
  if (name == "loglik") return Protocol::Loglik;
  throw Error("", "protocol", "expected letter or loglik, got '" + name + "'");
}

std::string Shard::name() const { return std::to_string(index) + "/" + std::to_string(count); }

Shard parse_shard(const std::string& text, const std::string& field) {
  const auto slash = text.find('/');
  auto number = [&](const std::string& part, std::size_t& out) {
    if (part.empty() || part.size() > 6 || part.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stoul(part);
    return true;
  };
  Shard s;
  if (slash == std::string::npos || !number(text.substr(0, slash), s.index) ||
      !number(text.substr(slash + 1), s.count) || s.count == 0 || s.index >= s.count)
    throw Error("", field, "expected I/N with 0 <= I < N (shard I of N, counted from 0), got '" + text + "'");
  return s;
}

const char* protocol_name(Protocol p) { return p == Protocol::Letter ? "letter" : "loglik"; }

nlohmann::json result_settings(const EvalSettings& s, const std::string& model_fingerprint,
                               const std::vector<std::string>& methods) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const auto& t : s.tasks) tasks.push_back({{"task", t.task}, {"data", t.data}, {"split", t.split}});
  nlohmann::json m = nlohmann::json::array({"base"});
  for (const auto& name : methods) m.push_back(name);
  return {{"model_fingerprint", model_fingerprint},
          {"dtype", s.dtype},
          {"protocol", protocol_name(s.protocol)},
          {"tasks", tasks},
          {"limit", s.limit},
          {"shuffle_seed", s.shuffle_seed ? nlohmann::json(*s.shuffle_seed) : nlohmann::json(nullptr)},
          {"skip_bad", s.skip_bad},
          {"record_timing", s.record_timing},
          {"methods", m},
          {"method_settings", s.method_settings}};
}

std::vector<std::size_t> seeded_permutation(std::size_t n, uint64_t seed) {
  std::vector<std::size_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (std::size_t i = n; i > 1; --i) {
    // Unbiased draw in [0, i): reject the top partial block of the 64-bit range.
    const uint64_t bound = static_cast<uint64_t>(i);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = next();
    while (r >= limit);
    std::swap(p[i - 1], p[static_cast<std::size_t>(r % bound)]);
  }
  return p;
}

template <typename T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed) {
  const auto p = seeded_permutation(v.size(), seed);
  std::vector<T> out;
  out.reserve(v.size());
  for (std::size_t i : p) out.push_back(std::move(v[i]));
  v = std::move(out);
}
template void seeded_shuffle<data::McItem>(std::vector<data::McItem>&, uint64_t);

std::vector<EvalTask> load_tasks(const EvalSettings& s) {
  if (s.tasks.empty()) throw Error("", "task", "no task given");
  std::vector<EvalTask> out;
  for (const auto& request : s.tasks) {
    data::ReadOptions ro;
    ro.skip_bad = s.skip_bad;
    data::ReadResult read = data::read_task(request.task, request.data, request.split, ro);
    EvalTask t;
    t.request = request;
    t.available = read.items.size();
    t.skipped = read.skipped;
    t.skip_messages = std::move(read.messages);
    t.items = std::move(read.items);
    if (s.shuffle_seed) seeded_shuffle(t.items, *s.shuffle_seed);
    if (s.limit > 0 && t.items.size() > s.limit) t.items.resize(s.limit);
    if (t.items.empty())
      throw Error(request.data, "items", "no item to evaluate for task " + request.task);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace c3po::eval
