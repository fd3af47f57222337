// Neighbours' PrefixStates (RemixSession::references, what RemixMethod::run uses) must not depend on
// what the cache held before: a cold session, a session warmed by other items and one fed one
// reference at a time give the same bits, and NGD and kernel regression the same answers and
// FLOPs, on the shipped demo model with a real store. This is what makes a resumed or sharded
// eval byte-identical to an uninterrupted one.
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
  EXPECT_TRUE(torch::equal(a.hidden, b.hidden)) << what << ": hidden";
  ASSERT_EQ(a.keys.size(), b.keys.size()) << what;
  ASSERT_EQ(a.values.size(), b.values.size()) << what;
  for (std::size_t l = 0; l < a.keys.size(); ++l) {
    EXPECT_TRUE(torch::equal(a.keys[l], b.keys[l])) << what << ": keys of layer " << l;
    EXPECT_TRUE(torch::equal(a.values[l], b.values[l])) << what << ": values of layer " << l;
  }
}

void expect_same_outcome(const eval::MethodOutcome& a, const eval::MethodOutcome& b, const std::string& what) {
  EXPECT_EQ(a.prediction, b.prediction) << what;
  EXPECT_EQ(a.letter_probs, b.letter_probs) << what;
  EXPECT_EQ(a.flops, b.flops) << what;
  EXPECT_EQ(a.details["neighbours"], b.details["neighbours"]) << what;
  EXPECT_EQ(a.details.value("losses", nlohmann::json()), b.details.value("losses", nlohmann::json())) << what;
}

}  // namespace

TEST(NeighbourPrefill, StatesOutcomesAndFlopsDoNotDependOnTheCache) {
  const DemoWorld& s = demo();
  ASSERT_GE(s.store->counts().correct, 10) << "the demo store has too few usable references";
  // A session warmed by every item first, in reverse order: each item's neighbours are then
  // cached, computed while other references were or were not missing.
  auto warm = s.session();
  for (std::size_t i = s.tests.size(); i-- > 0;) {
    auto b = base_pass(s, *warm, s.tests[i]);
    remix::RemixMethod(warm, remix::MethodKind::Ngd).run(b->ctx);
  }
  const int64_t warm_forwards = warm->prefill_forwards();
  for (const auto& item : s.tests) {
    SCOPED_TRACE(item.id);
    auto cold = s.session();
    auto base_cold = base_pass(s, *cold, item);
    const auto& nb = cold->neighbours(base_cold->ctx);
    ASSERT_EQ(nb.members.size(), 3u);
    remix::RemixMethod ngd_cold(cold, remix::MethodKind::Ngd), kernel_cold(cold, remix::MethodKind::Kernel);
    const auto ngd_a = ngd_cold.run(base_cold->ctx);
    EXPECT_EQ(cold->prefill_forwards(), 3);  // one forward per missing neighbour
    const auto kernel_a = kernel_cold.run(base_cold->ctx);
    EXPECT_EQ(cold->prefill_forwards(), 3);  // nothing recomputed

    // One reference at a time, in reverse order, before the method runs.
    auto one = s.session();
    auto base_one = base_pass(s, *one, item);
    for (std::size_t m = nb.members.size(); m-- > 0;) one->reference(nb.members[m].index, nullptr);
    const auto ngd_b = remix::RemixMethod(one, remix::MethodKind::Ngd).run(base_one->ctx);

    for (const auto& m : nb.members) EXPECT_NE(warm->cache().peek(m.index), nullptr);  // from the warm-up
    auto base_warm = base_pass(s, *warm, item);
    const auto ngd_c = remix::RemixMethod(warm, remix::MethodKind::Ngd).run(base_warm->ctx);
    const auto kernel_c = remix::RemixMethod(warm, remix::MethodKind::Kernel).run(base_warm->ctx);

    for (const auto& m : nb.members) {
      const std::string what = "reference " + std::to_string(m.index);
      ASSERT_NE(cold->cache().peek(m.index), nullptr);
      expect_same_state(*cold->cache().peek(m.index), *one->cache().peek(m.index), what + " (one by one)");
      expect_same_state(*cold->cache().peek(m.index), *warm->cache().peek(m.index), what + " (warm)");
    }
    expect_same_outcome(ngd_a, ngd_b, "ngd, one by one");
    expect_same_outcome(ngd_a, ngd_c, "ngd, warm");
    expect_same_outcome(kernel_a, kernel_c, "kernel, warm");
  }
  // The warm session ran every item again without computing a single reference anew.
  EXPECT_EQ(warm->prefill_forwards(), warm_forwards);
}

TEST(NeighbourPrefill, RepeatedAndCachedIndicesAreFetchedOnceAndAlwaysCharged) {
  const DemoWorld& s = demo();
  auto session = s.session();
  auto base = base_pass(s, *session, s.tests[0]);
  const auto& nb = session->neighbours(base->ctx);
  ASSERT_EQ(nb.members.size(), 3u);
  const int64_t a = nb.members[0].index, b = nb.members[1].index, c = nb.members[2].index;
  double flops_a = 0;
  session->reference(a, &flops_a);
  EXPECT_GT(flops_a, 0);
  double flops = 0;
  const auto refs = session->references({b, a, b, c}, &flops);
  EXPECT_EQ(session->prefill_forwards(), 3);  // a, then b and c: each once
  ASSERT_EQ(refs.size(), 4u);
  EXPECT_EQ(refs[0].prefix, refs[2].prefix);
  EXPECT_EQ(refs[1].prefix, session->cache().peek(a));
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const int64_t index = std::vector<int64_t>{b, a, b, c}[i];
    EXPECT_EQ(refs[i].gold, s.store->gold()[index].item<int64_t>());
    EXPECT_EQ(refs[i].letter_ids.size(), s.store->item(index).choices.size());
  }
  // Three distinct references are charged (a too, though cached), each once, as a cold session would.
  double cold = 0;
  auto fresh = s.session();
  fresh->references({a, b, c}, &cold);
  EXPECT_DOUBLE_EQ(flops, cold);
  double again = 0;
  fresh->references({c, a, b}, &again);
  EXPECT_DOUBLE_EQ(again, cold);
  EXPECT_EQ(fresh->prefill_forwards(), 3);
}
