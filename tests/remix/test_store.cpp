#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/error.h"
#include "remix/embedder.h"
#include "remix/neighbours.h"
#include "remix/store.h"

namespace fs = std::filesystem;
using namespace c3po::remix;

namespace {

std::string temp_path(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("c3po-store-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

// Unit vectors at chosen angles in the plane of the first two axes (cos = cos(angle)).
torch::Tensor at_angle(double radians, int64_t dim = 4) {
  auto v = torch::zeros({dim});
  v[0] = std::cos(radians);
  v[1] = std::sin(radians);
  return v;
}

StoreRows rows_at(const std::vector<double>& angles, const std::vector<std::string>& sources) {
  StoreRows r;
  for (std::size_t i = 0; i < angles.size(); ++i) {
    c3po::data::McItem it;
    it.id = "ref-" + std::to_string(i);
    it.task = sources[i];
    it.question = "Question " + std::to_string(i) + " with \"quotes\" and \xC3\xA9";
    it.choices = {"yes", "no", "maybe"};
    it.gold = static_cast<int>(i % 3);
    r.items.push_back(it);
    r.embeddings.push_back(at_angle(angles[i]));
    torch::manual_seed(i);
    r.pathways.push_back(torch::softmax(torch::randn({3, 8}), 1));
    r.base_loss.push_back(0.1f * static_cast<float>(i));
    r.correct.push_back(i == 4 ? 0 : 1);
  }
  return r;
}

const StoreIdentity kId{"model-abc", "hash:dim=4", "letter/1"};

}  // namespace

TEST(ReferenceStore, RoundTripsExactly) {
  const auto path = temp_path("rt.store");
  auto rows = rows_at({0.0, 0.1, 0.5, 1.0, 2.0}, {"sciq", "sciq", "openbookqa", "sciq", "openbookqa"});
  ReferenceStore::write(path, kId, {7, 4, 3, 1}, {"openbookqa", "sciq"}, rows, /*half_pathways=*/false);
  auto s = ReferenceStore::open(path);
  EXPECT_EQ(s.identity(), kId);
  EXPECT_EQ(s.counts().seen, 7);
  EXPECT_EQ(s.counts().skipped, 1);
  ASSERT_EQ(s.size(), 5);
  EXPECT_EQ(s.num_moe_layers(), 3);
  EXPECT_EQ(s.num_experts(), 8);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_TRUE(torch::equal(s.pathway(i), rows.pathways[i]));
    EXPECT_TRUE(torch::allclose(s.embeddings()[i], rows.embeddings[i], 1e-6, 1e-7));
    const auto it = s.item(i);
    EXPECT_EQ(it.id, rows.items[i].id);
    EXPECT_EQ(it.question, rows.items[i].question);
    EXPECT_EQ(it.choices, rows.items[i].choices);
    EXPECT_EQ(it.gold, rows.items[i].gold);
    EXPECT_EQ(s.task(i), rows.items[i].task);
    EXPECT_EQ(s.gold()[i].item<int64_t>(), rows.items[i].gold);
    EXPECT_FLOAT_EQ(s.base_loss()[i].item<float>(), rows.base_loss[i]);
    EXPECT_EQ(s.correct(i), rows.correct[i] != 0);
  }
  EXPECT_EQ(s.find("sciq", "ref-3"), 3);
  EXPECT_EQ(s.find("openbookqa", "ref-3"), -1);
  EXPECT_EQ(s.find("sciq", "nope"), -1);
}

TEST(ReferenceStore, HalfPathwaysAreTheFp16Rounding) {
  const auto path = temp_path("half.store");
  auto rows = rows_at({0.0, 0.3}, {"a", "a"});
  ReferenceStore::write(path, kId, {2, 2, 0, 0}, {"a"}, rows);
  auto s = ReferenceStore::open(path);
  EXPECT_EQ(s.pathways().scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(s.pathway(1), rows.pathways[1].to(torch::kHalf).to(torch::kFloat)));
}

TEST(ReferenceStore, RefusedByAnotherModelEmbedderOrFormat) {
  const auto path = temp_path("id.store");
  ReferenceStore::write(path, kId, {1, 1, 0, 0}, {"a"}, rows_at({0.0}, {"a"}));
  auto s = ReferenceStore::open(path);
  EXPECT_NO_THROW(s.require(kId));
  for (auto bad : {StoreIdentity{"model-xyz", kId.embedder, kId.prompt_format},
                   StoreIdentity{kId.model_fingerprint, "model:layer=3", kId.prompt_format},
                   StoreIdentity{kId.model_fingerprint, kId.embedder, "letter/2"}}) {
    try {
      s.require(bad);
      FAIL();
    } catch (const c3po::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("rebuild"), std::string::npos);
    }
  }
}

TEST(ReferenceStore, CorruptionAndTruncationAreDetected) {
  const auto path = temp_path("bad.store");
  ReferenceStore::write(path, kId, {2, 2, 0, 0}, {"a"}, rows_at({0.0, 0.4}, {"a", "a"}));
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Flip one byte near the end (inside the item text).
  auto flipped = bytes;
  flipped[flipped.size() - 10] ^= 0x01;
  std::ofstream(temp_path("flip.store"), std::ios::binary) << flipped;
  try {
    ReferenceStore::open(temp_path("flip.store"));
    FAIL();
  } catch (const c3po::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  std::ofstream(temp_path("cut.store"), std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  EXPECT_THROW(ReferenceStore::open(temp_path("cut.store")), c3po::Error);
  EXPECT_THROW(ReferenceStore::open(temp_path("absent.store")), c3po::Error);
}

TEST(Neighbours, KnnLeakageGuardSelfAndWeights) {
  const auto path = temp_path("nb.store");
  // cos to the query (angle 0): 1.0 (the item itself), cos(0.2)=0.980 (leak), cos(0.5), cos(0.8), cos(1.2)
  auto rows = rows_at({0.0, 0.2, 0.5, 0.8, 1.2}, {"a", "a", "a", "a", "a"});
  rows.correct = {1, 1, 1, 1, 1};
  rows.items[0].id = "test-item";
  ReferenceStore::write(path, kId, {5, 5, 0, 0}, {"a"}, rows);
  auto s = ReferenceStore::open(path);
  auto all = torch::ones({5}, torch::kBool);
  NeighbourOptions o;  // k = 3, guard 0.95
  KernelSpec g;        // Gaussian 0.5
  auto nb = find_neighbours(s, at_angle(0).unsqueeze(0), all, {s.find("a", "test-item")}, o, g)[0];
  EXPECT_EQ(nb.excluded_self, 1);
  EXPECT_EQ(nb.excluded_leakage, 1);
  ASSERT_EQ(nb.members.size(), 3u);
  EXPECT_EQ(nb.members[0].index, 2);
  EXPECT_EQ(nb.members[1].index, 3);
  EXPECT_EQ(nb.members[2].index, 4);
  double total = 0;
  for (const auto& m : nb.members) total += g.weight(m.similarity);
  for (const auto& m : nb.members) {
    EXPECT_NEAR(m.similarity, std::cos(m.index == 2 ? 0.5 : m.index == 3 ? 0.8 : 1.2), 1e-6);
    EXPECT_NEAR(m.weight, g.weight(m.similarity) / total, 1e-12);
  }
  // Epsilon ball: distance 1 - cos <= 0.4 keeps cos(0.5)=0.878 and cos(0.8)=0.697 only.
  o.epsilon = 0.4;
  nb = find_neighbours(s, at_angle(0).unsqueeze(0), all, {s.find("a", "test-item")}, o, g)[0];
  ASSERT_EQ(nb.members.size(), 2u);
  // A cap on how many are used.
  o.max_neighbours = 1;
  EXPECT_EQ(find_neighbours(s, at_angle(0).unsqueeze(0), all, {-1}, o, g)[0].members.size(), 1u);
}

// Ids are unique per dataset only: the item "7" of dataset b must not hide (or be taken for) the
// item "7" of dataset a.
TEST(Neighbours, SelfIsFoundByDatasetAndId) {
  const auto path = temp_path("selfid.store");
  auto rows = rows_at({0.0, 0.1, 0.5, 0.8}, {"b", "a", "a", "a"});
  rows.correct = {1, 1, 1, 1};
  rows.items[0].id = "7";  // b's 7 comes first
  rows.items[1].id = "7";  // a's 7: the test item itself
  ReferenceStore::write(path, kId, {4, 4, 0, 0}, {"a", "b"}, rows);
  auto s = ReferenceStore::open(path);
  EXPECT_EQ(s.find("b", "7"), 0);
  EXPECT_EQ(s.find("a", "7"), 1);
  EXPECT_EQ(s.find("c", "7"), -1);
  NeighbourOptions o;
  o.leakage_guard = 1.01;  // only the self exclusion removes anything
  o.k = 4;
  auto nb = find_neighbours(s, at_angle(0).unsqueeze(0), torch::ones({4}, torch::kBool), {s.find("a", "7")}, o,
                            KernelSpec{})[0];
  EXPECT_EQ(nb.excluded_self, 1);
  ASSERT_EQ(nb.members.size(), 3u);
  for (const auto& m : nb.members) EXPECT_NE(m.index, 1);
  EXPECT_EQ(nb.members[0].index, 0);  // b's 7 stays a neighbour
}

// A pool the user writes must name datasets the store holds; the default pools may name absent ones.
TEST(Neighbours, GivenPoolsMustNameStoredDatasets) {
  const auto path = temp_path("poolcheck.store");
  auto rows = rows_at({0.3, 0.4}, {"sciq", "openbookqa"});
  ReferenceStore::write(path, kId, {2, 2, 0, 0}, {"openbookqa", "sciq"}, rows);
  auto s = ReferenceStore::open(path);
  EXPECT_NO_THROW(CandidatePools::paper_default().check(s));
  auto pools = CandidatePools::paper_default();
  pools.parse("arc_challenge=sciq,openbookqa");
  EXPECT_NO_THROW(pools.check(s));
  pools.parse("arc_challenge=sciqq");
  try {
    pools.check(s);
    FAIL() << "an unknown dataset was accepted";
  } catch (const c3po::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("sciqq"), std::string::npos) << m;
    EXPECT_NE(m.find("openbookqa, sciq"), std::string::npos) << m;
  }
}

TEST(Neighbours, CandidatePoolsAndIncorrectReferences) {
  const auto path = temp_path("pool.store");
  auto rows = rows_at({0.3, 0.4, 0.5, 0.6, 0.7}, {"sciq", "mmlu", "openbookqa", "sciq", "sciq"});
  ReferenceStore::write(path, kId, {5, 4, 1, 0}, {"mmlu", "openbookqa", "sciq"}, rows);  // row 4 incorrect
  auto s = ReferenceStore::open(path);
  auto pools = CandidatePools::paper_default();
  auto m = pools.mask(s, "arc_challenge");
  EXPECT_EQ(m.sum().item<int64_t>(), 3);  // sciq 0, openbookqa 2, sciq 3; row 4 was answered wrongly
  EXPECT_FALSE(m[1].item<bool>());
  EXPECT_FALSE(m[4].item<bool>());
  EXPECT_EQ(pools.mask(s, "unknown_task").sum().item<int64_t>(), 4);
  pools.parse("arc_challenge=mmlu");
  EXPECT_EQ(pools.mask(s, "arc_challenge").sum().item<int64_t>(), 1);
  EXPECT_THROW(pools.parse("arc_challenge"), c3po::Error);
}

TEST(HashedEmbedder, DeterministicUnitAndTopical) {
  HashedNgramEmbedder e(256);
  auto v = e.embed({"Which planet is closest to the Sun?", "Which planet is nearest the Sun?",
                    "How many legs does a spider have?"});
  EXPECT_TRUE(torch::allclose(v.norm(2, 1), torch::ones({3}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(v, e.embed({"Which planet is closest to the Sun?", "Which planet is nearest the Sun?",
                                       "How many legs does a spider have?"})));
  EXPECT_GT(torch::dot(v[0], v[1]).item<float>(), torch::dot(v[0], v[2]).item<float>() + 0.2f);
}
