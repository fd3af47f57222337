#pragma once
// Finding a test item's neighbours among the references (method.md section 5): exact cosine search
// with one matrix product over unit embeddings, kNN or an epsilon-ball, the leakage guard, the test
// item itself excluded, candidate pools per benchmark, kernel weights.
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "remix/options.h"

namespace c3po::remix {

class ReferenceStore;

struct Neighbour {
  int64_t index = 0;       // row in the store
  double similarity = 0;   // cosine
  double weight = 0;       // kernel weight, normalised to sum 1 over the neighbourhood
};

struct Neighbourhood {
  std::vector<Neighbour> members;   // most similar first
  int64_t excluded_leakage = 0;     // candidates above the leakage guard
  int64_t excluded_self = 0;        // the test item itself
};

// Which reference datasets serve which benchmark (method.md section 4). A task with no entry, or
// whose datasets are all absent from the store, may use every reference.
class CandidatePools {
 public:
  static CandidatePools paper_default();
  // "arc_challenge=openbookqa,sciq;hellaswag=commonsense_qa" adds or replaces entries.
  void parse(const std::string& spec);
  // c3po::Error naming the store when an entry given to parse() names a dataset the store does not
  // hold (the default entries may name datasets a store lacks: those tasks use what is there).
  void check(const ReferenceStore& store) const;
  // Mask [N] bool of usable references for a task (correct ones from the allowed datasets).
  torch::Tensor mask(const ReferenceStore& store, const std::string& task) const;
  const std::map<std::string, std::vector<std::string>>& entries() const { return pools_; }

 private:
  std::map<std::string, std::vector<std::string>> pools_;
  std::vector<std::string> given_;  // tasks whose entry came from parse()
};

// queries [Q, D] (unit rows), candidate mask [N]; self_rows: per query the store row of the query
// item itself, excluded (-1: none; ReferenceStore::find(dataset, id)).
std::vector<Neighbourhood> find_neighbours(const ReferenceStore& store, const torch::Tensor& queries,
                                           const torch::Tensor& candidates, const std::vector<int64_t>& self_rows,
                                           const NeighbourOptions& opt, const KernelSpec& kernel);

}  // namespace c3po::remix
