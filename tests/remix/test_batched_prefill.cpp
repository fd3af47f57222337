// Neighbours' PrefixStates computed in one batched forward (RemixSession::references, what
// RemixMethod::run uses) against one forward per neighbour (RemixSession::reference): the states
// and the NGD and kernel-regression outcomes agree, on the shipped demo model with a real store.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <set>

#include "data/registry.h"
#include "eval/requests.h"
#include "model/engine.h"
#include "remix/build.h"
#include "remix/remixer.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace c3po;

namespace {

const std::string kDemo = std::string(C3PO_SOURCE_DIR) + "/models/demo";
constexpr double kTol = 1e-5;  // fp32

struct DemoWorld {
  std::unique_ptr<model::MoeModel> model = model::MoeModel::load(kDemo, model::Dtype::F32);
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(kDemo);
  std::shared_ptr<const remix::ReferenceStore> store;
  std::vector<data::McItem> tests;

  DemoWorld() {
    const auto dir = fs::temp_directory_path() / ("c3po-batched-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    remix::BuildOptions o;
    o.sources.push_back({"generic", kDemo + "/data/reference.jsonl", ""});
    o.limit = 64;
    o.progress = nullptr;
    o.out = (dir / "refs.store").string();
    remix::build_reference_store(*model, tok, o);
    store = std::make_shared<const remix::ReferenceStore>(remix::ReferenceStore::open(o.out));
    tests = data::read_task("generic", kDemo + "/data/test.jsonl").items;
    tests.resize(6);
  }

  std::shared_ptr<remix::RemixSession> session() const {
    return std::make_shared<remix::RemixSession>(*model, tok, store, remix::RemixOptions{},
                                                 remix::CandidatePools::paper_default(), remix::EmbedderChoice{},
                                                 std::size_t{1} << 30);
  }
};

const DemoWorld& demo() {
  static DemoWorld s;
  return s;
}

// The base pass of one item as the harness runs it for the re-mixing methods.
struct Base {
  eval::LetterRequest req;
  model::ForwardResult res;
  eval::ItemContext ctx;
};

std::unique_ptr<Base> base_pass(const DemoWorld& s, remix::RemixSession& session, const data::McItem& item) {
  auto b = std::make_unique<Base>();
  b->req = eval::encode_letter_request(s.tok, item, 0);
  model::ForwardOptions fo;
  session.prepare(fo);
  fo.capture = true;
  fo.vocab_rows = b->req.letter_ids;
  b->res = s.model->forward({b->req.ids}, fo);
  auto& c = b->ctx;
  c.item = &item;
  c.prompt = b->req.prompt;
  c.ids = b->req.ids;
  c.letter_ids = b->req.letter_ids;
  c.letter_logits = b->res.logits[0];
  c.pathway = b->res.pathway[0];
  c.embedding = b->res.embedding[0];
  c.prefix = &b->res.prefixes[0];
  return b;
}

void expect_same_state(const model::PrefixState& a, const model::PrefixState& b, const std::string& what) {
  EXPECT_EQ(a.moe_layer, b.moe_layer) << what;
  EXPECT_EQ(a.decoder_layer, b.decoder_layer) << what;
  EXPECT_EQ(a.position, b.position) << what;
  EXPECT_EQ(a.fingerprint, b.fingerprint) << what;
  EXPECT_TRUE(torch::allclose(a.hidden, b.hidden, kTol, kTol)) << what << ": hidden";
  ASSERT_EQ(a.keys.size(), b.keys.size()) << what;
  ASSERT_EQ(a.values.size(), b.values.size()) << what;
  for (std::size_t l = 0; l < a.keys.size(); ++l) {
    EXPECT_EQ(a.keys[l].sizes(), b.keys[l].sizes()) << what << ": keys of layer " << l;
    EXPECT_TRUE(torch::allclose(a.keys[l], b.keys[l], kTol, kTol)) << what << ": keys of layer " << l;
    EXPECT_TRUE(torch::allclose(a.values[l], b.values[l], kTol, kTol)) << what << ": values of layer " << l;
  }
}

void expect_same_outcome(const eval::MethodOutcome& a, const eval::MethodOutcome& b, const std::string& what) {
  EXPECT_EQ(a.prediction, b.prediction) << what;
  ASSERT_EQ(a.letter_probs.size(), b.letter_probs.size()) << what;
  for (std::size_t j = 0; j < a.letter_probs.size(); ++j)
    EXPECT_NEAR(a.letter_probs[j], b.letter_probs[j], kTol) << what << ": letter " << j;
  EXPECT_EQ(a.details["neighbours"], b.details["neighbours"]) << what;
}

}  // namespace

TEST(BatchedPrefill, StatesAndOutcomesEqualOneForwardPerNeighbour) {
  const DemoWorld& s = demo();
  ASSERT_GE(s.store->counts().correct, 10) << "the demo store has too few usable references";
  int items_with_distinct_lengths = 0;
  for (const auto& item : s.tests) {
    SCOPED_TRACE(item.id);
    // One-by-one: each neighbour's state from its own forward, before the methods run (they then
    // find every neighbour in the cache).
    auto one = s.session();
    auto base_one = base_pass(s, *one, item);
    const auto& nb = one->neighbours(base_one->ctx);
    ASSERT_EQ(nb.members.size(), 3u);
    std::set<int64_t> positions;
    for (const auto& m : nb.members) {
      one->reference(m.index, nullptr);
      positions.insert(one->cache().peek(m.index)->position);
    }
    items_with_distinct_lengths += positions.size() > 1;
    EXPECT_EQ(one->prefill_forwards(), 3);
    remix::RemixMethod ngd_one(one, remix::MethodKind::Ngd), kernel_one(one, remix::MethodKind::Kernel);
    const auto ngd_a = ngd_one.run(base_one->ctx);
    const auto kernel_a = kernel_one.run(base_one->ctx);
    EXPECT_EQ(one->prefill_forwards(), 3);  // nothing recomputed

    // Batched: the method itself fetches the cold neighbourhood in one forward.
    auto batched = s.session();
    auto base_b = base_pass(s, *batched, item);
    remix::RemixMethod ngd_b(batched, remix::MethodKind::Ngd), kernel_b(batched, remix::MethodKind::Kernel);
    const auto ngd_batched = ngd_b.run(base_b->ctx);
    EXPECT_EQ(batched->prefill_forwards(), 1);
    EXPECT_EQ(batched->cache().misses(), 3);
    const auto kernel_batched = kernel_b.run(base_b->ctx);
    EXPECT_EQ(batched->prefill_forwards(), 1);

    for (const auto& m : nb.members) {
      const auto* a = one->cache().peek(m.index);
      const auto* b = batched->cache().peek(m.index);
      ASSERT_NE(a, nullptr);
      ASSERT_NE(b, nullptr);
      expect_same_state(*a, *b, "reference " + std::to_string(m.index));
    }
    expect_same_outcome(ngd_a, ngd_batched, "ngd");
    expect_same_outcome(kernel_a, kernel_batched, "kernel");
    ASSERT_TRUE(ngd_a.details.contains("losses"));
    const auto la = ngd_a.details["losses"].template get<std::vector<double>>();
    const auto lb = ngd_batched.details["losses"].template get<std::vector<double>>();
    ASSERT_EQ(la.size(), lb.size());
    for (std::size_t t = 0; t < la.size(); ++t) EXPECT_NEAR(la[t], lb[t], kTol) << "loss of step " << t;
    // The cold run pays for the three prefills, the warm one does not.
    EXPECT_GT(ngd_batched.flops, ngd_a.flops);
  }
  // The batches really packed prompts of different lengths.
  EXPECT_GT(items_with_distinct_lengths, 0);
}

TEST(BatchedPrefill, RepeatedAndCachedIndicesAreFetchedOnce) {
  const DemoWorld& s = demo();
  auto session = s.session();
  auto base = base_pass(s, *session, s.tests[0]);
  const auto& nb = session->neighbours(base->ctx);
  ASSERT_EQ(nb.members.size(), 3u);
  const int64_t a = nb.members[0].index, b = nb.members[1].index, c = nb.members[2].index;
  session->reference(a, nullptr);
  double flops = 0;
  const auto refs = session->references({b, a, b, c}, &flops);
  EXPECT_EQ(session->prefill_forwards(), 2);  // a alone, then b and c together
  ASSERT_EQ(refs.size(), 4u);
  EXPECT_EQ(refs[0].prefix, refs[2].prefix);
  EXPECT_EQ(refs[1].prefix, session->cache().peek(a));
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const int64_t index = std::vector<int64_t>{b, a, b, c}[i];
    EXPECT_EQ(refs[i].gold, s.store->gold()[index].item<int64_t>());
    EXPECT_EQ(refs[i].letter_ids.size(), s.store->item(index).choices.size());
  }
  // Two references' forwards were costed, not four.
  double one_by_one = 0;
  auto fresh = s.session();
  fresh->reference(b, &one_by_one);
  fresh->reference(c, &one_by_one);
  EXPECT_DOUBLE_EQ(flops, one_by_one);
}
