#include "remix/neighbours.h"

#include <algorithm>
#include <sstream>

#include "io/error.h"
#include "remix/store.h"

namespace c3po::remix {

CandidatePools CandidatePools::paper_default() {
  CandidatePools p;
  // The paper's mapping; a benchmark's own train split is added by naming it in --pools.
  p.pools_ = {
      {"mmlu", {"mmlu"}},
      {"hellaswag", {"commonsense_qa", "social_iqa"}},
      {"piqa", {"commonsense_qa", "social_iqa"}},
      {"arc_challenge", {"openbookqa", "sciq"}},
      {"arc_easy", {"openbookqa", "sciq"}},
      {"winogrande", {"knowref"}},
  };
  return p;
}

void CandidatePools::parse(const std::string& spec) {
  std::stringstream ss(spec);
  std::string entry;
  while (std::getline(ss, entry, ';')) {
    if (entry.empty()) continue;
    const auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size())
      throw Error("", "pools", "expected task=dataset,dataset;task=...; got \"" + entry + "\"");
    std::vector<std::string> sets;
    std::stringstream ds(entry.substr(eq + 1));
    std::string d;
    while (std::getline(ds, d, ',')) if (!d.empty()) sets.push_back(d);
    pools_[entry.substr(0, eq)] = sets;
    given_.push_back(entry.substr(0, eq));
  }
}

void CandidatePools::check(const ReferenceStore& store) const {
  const auto& held = store.datasets();
  for (const auto& task : given_)
    for (const auto& d : pools_.at(task))
      if (std::find(held.begin(), held.end(), d) == held.end()) {
        std::string list;
        for (const auto& h : held) list += (list.empty() ? "" : ", ") + h;
        throw Error(store.path(), "pools",
                    "the pool of " + task + " names \"" + d + "\", which this store does not hold (it holds: " + list +
                        ")");
      }
}

torch::Tensor CandidatePools::mask(const ReferenceStore& store, const std::string& task) const {
  // Incorrectly answered references (kept only on request) are never neighbours.
  const auto usable = store.correct_flags().to(torch::kBool);
  auto it = pools_.find(task);
  if (it == pools_.end()) return usable;
  std::vector<int64_t> allowed;
  for (std::size_t d = 0; d < store.datasets().size(); ++d)
    if (std::find(it->second.begin(), it->second.end(), store.datasets()[d]) != it->second.end())
      allowed.push_back(static_cast<int64_t>(d));
  if (allowed.empty()) return usable;  // none of the pool's datasets is in the store
  auto in_pool = torch::isin(store.source_index().to(torch::kLong), torch::tensor(allowed, torch::kLong));
  return usable & in_pool;
}

std::vector<Neighbourhood> find_neighbours(const ReferenceStore& store, const torch::Tensor& queries,
                                           const torch::Tensor& candidates, const std::vector<int64_t>& self_rows,
                                           const NeighbourOptions& opt, const KernelSpec& kernel) {
  if (queries.dim() != 2 || queries.size(1) != store.embedding_dim())
    throw Error(store.path(), "embeddings",
                "the query embeddings have dimension " + std::to_string(queries.size(-1)) + ", the store " +
                    std::to_string(store.embedding_dim()));
  torch::NoGradGuard no_grad;
  const auto sims = torch::matmul(queries.to(torch::kFloat), store.embeddings().t());  // [Q, N]
  const auto cand = candidates.to(torch::kBool);
  std::vector<Neighbourhood> out(queries.size(0));
  for (int64_t q = 0; q < queries.size(0); ++q) {
    auto& nb = out[q];
    auto row = sims[q].clone();
    auto allowed = cand.clone();
    if (q < static_cast<int64_t>(self_rows.size()) && self_rows[q] >= 0) {
      const int64_t self = self_rows[q];
      if (self < store.size() && allowed[self].item<bool>()) {
        allowed[self] = false;
        nb.excluded_self = 1;
      }
    }
    const auto leak = allowed & row.gt(opt.leakage_guard);
    nb.excluded_leakage = leak.sum().item<int64_t>();
    allowed = allowed & ~leak;
    row.masked_fill_(~allowed, -std::numeric_limits<float>::infinity());
    const int64_t available = allowed.sum().item<int64_t>();
    int64_t want = opt.epsilon ? available : std::min<int64_t>(opt.k, available);
    if (opt.max_neighbours > 0) want = std::min<int64_t>(want, opt.max_neighbours);
    if (want <= 0) continue;
    auto [vals, idx] = row.topk(want);
    double total = 0;
    for (int64_t j = 0; j < want; ++j) {
      const double cos = vals[j].item<double>();
      if (opt.epsilon && 1.0 - cos > *opt.epsilon) break;  // sorted: the rest are farther
      Neighbour n{idx[j].item<int64_t>(), cos, kernel.weight(cos)};
      total += n.weight;
      nb.members.push_back(n);
    }
    for (auto& n : nb.members) n.weight = total > 0 ? n.weight / total : 0.0;
  }
  return out;
}

}  // namespace c3po::remix
