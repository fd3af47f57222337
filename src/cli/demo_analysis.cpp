#include "cli/demo_analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "data/registry.h"
#include "demo/tasks.h"
#include "eval/requests.h"
#include "io/error.h"

namespace c3po::cli {
namespace {

// The paper's OLMoE averages (Table 1): base, icl, mode, kernel, ngd, oracle.
const std::map<std::string, double>& paper_olmoe() {
  static const std::map<std::string, double> p{{"base", 69.9}, {"icl", 73.7},  {"mode", 72.4},
                                               {"kernel", 76.9}, {"ngd", 79.2}, {"oracle", 85.2}};
  return p;
}

// Per item id, its family and the family of its cue, from a demo data file (the demo's jsonl
// format, src/demo/tasks.h). Other data has no families: empty maps, and the per-family numbers
// are left out.
struct Families {
  std::map<std::string, std::string> family, cue;
  std::string unread;  // why the file gave no families (its error), empty when it did
};

Families families_of(const std::string& path) {
  Families out;
  std::vector<demo::McItem> items;
  try {
    items = demo::read_jsonl(path);
  } catch (const Error& e) {
    out.unread = e.what();
    return out;
  }
  for (const auto& it : items) {
    out.family[it.id] = it.task;
    if (!it.cue.empty()) out.cue[it.id] = it.cue;
  }
  return out;
}

const nlohmann::json* details_of(const nlohmann::json& rec, const std::string& method) {
  if (!rec.contains("methods") || !rec["methods"].contains(method)) return nullptr;
  const auto& m = rec["methods"][method];
  return m.contains("details") ? &m["details"] : nullptr;
}

int prediction_of(const nlohmann::json& rec, const std::string& method) {
  if (!rec.contains("methods") || !rec["methods"].contains(method)) return -1;
  return rec["methods"][method].value("prediction", -1);
}

// (critical-layer position, expert) selections of an experts_before / experts_after list.
std::vector<std::pair<int, int>> selections(const nlohmann::json& layers) {
  std::vector<std::pair<int, int>> out;
  int c = 0;
  for (const auto& l : layers) {
    for (const auto& e : l["experts"]) out.emplace_back(c, e["expert"].get<int>());
    ++c;
  }
  return out;
}

std::string pct(double v) { return fmt::format("{:.1f}", 100.0 * v); }

struct Usage {
  std::map<std::string, std::map<std::pair<int, int>, int>> counts;  // family -> (layer, expert) -> n
  std::map<std::string, int> slots;                                   // family -> selections seen
};

}  // namespace

DemoAnalysis analyse_demo(const DemoAnalysisInput& in) {
  DemoAnalysis out;
  const auto ref_families = families_of(in.reference_file);
  const auto& ref_family = ref_families.family;
  const auto& store = *in.store;
  const int top_k = in.model->top_k();
  const int E = in.model->num_experts();
  const auto critical_index = torch::tensor(std::vector<int64_t>(in.critical.begin(), in.critical.end()), torch::kLong);
  // Pathways of the correct references over the critical layers, by family.
  const auto ref_paths = store.pathways().index_select(1, critical_index).to(torch::kFloat).reshape({store.size(), -1});
  std::map<std::string, std::vector<int64_t>> refs_by_family;
  for (int64_t i = 0; i < store.size(); ++i) {
    if (!store.correct(i)) continue;
    const auto f = ref_family.find(store.item(i).id);
    if (f != ref_family.end()) refs_by_family[f->second].push_back(i);
  }

  // Home experts: per family and critical layer, the top_k experts its items use most before
  // re-mixing in the first condition.
  std::map<std::string, std::set<std::pair<int, int>>> home;
  std::string text;
  std::vector<std::string> findings;
  std::map<std::string, std::map<std::string, double>> acc;  // condition -> method -> accuracy
  std::map<std::string, std::map<std::string, double>> gap;  // condition -> method -> gap closed

  for (std::size_t ci = 0; ci < in.conditions.size(); ++ci) {
    const auto& cond = in.conditions[ci];
    const auto families = families_of(cond.data_file);
    const auto& family = families.family;
    const auto& cue = families.cue;
    for (const auto* f : {&ref_families, &families})
      if (!f->unread.empty())
        text += "Per-family numbers are left out: the file is not in the demo's format (" + f->unread + ").\n\n";
    const auto& records = cond.run->records.at(0);
    nlohmann::json J = {{"condition", cond.name}, {"data", cond.data_file}, {"n", records.size()}};
    text += fmt::format("\n### {} ({} items of {})\n\n", cond.name, records.size(), cond.data_file);

    for (const auto& m : cond.run->results["tasks"][0]["methods"]) {
      acc[cond.name][m["method"]] = m["acc"].get<double>();
      if (m.contains("gap_closed") && m["gap_closed"].is_number()) gap[cond.name][m["method"]] = m["gap_closed"].get<double>();
    }

    // 1. Accuracy after each NGD step.
    std::vector<int> right, seen;
    for (const auto& rec : records) {
      const auto* d = details_of(rec, "ngd");
      if (!d || !d->contains("step_predictions")) continue;
      const auto& sp = (*d)["step_predictions"];
      if (right.size() < sp.size()) right.resize(sp.size()), seen.resize(sp.size());
      for (std::size_t t = 0; t < sp.size(); ++t) {
        right[t] += sp[t].get<int>() == rec["gold"].get<int>();
        ++seen[t];
      }
    }
    if (!right.empty()) {
      std::vector<double> curve;
      text += "Accuracy after each NGD step (step 0: before any):\n\n| step |";
      for (std::size_t t = 0; t < right.size(); ++t) text += fmt::format(" {} |", t);
      text += "\n|---|";
      for (std::size_t t = 0; t < right.size(); ++t) text += "---:|";
      text += "\n| acc % |";
      for (std::size_t t = 0; t < right.size(); ++t) {
        curve.push_back(seen[t] ? static_cast<double>(right[t]) / seen[t] : 0.0);
        text += fmt::format(" {} |", pct(curve.back()));
      }
      text += "\n\n";
      J["ngd_accuracy_per_step"] = curve;
    }

    // 2. Expert usage per family before and after NGD, and the share of home experts.
    Usage before, after;
    // Items whose cue is another family's: the share of their selections on the cue family's home
    // experts, before and after NGD.
    int cue_slots = 0, cue_before = 0, cue_after = 0;
    std::vector<std::pair<std::string, nlohmann::json>> cued;  // (cue family, details) of such items
    for (const auto& rec : records) {
      const auto id = rec["id"].get<std::string>();
      const auto f = family.find(id);
      const auto* d = details_of(rec, "ngd");
      if (f == family.end() || !d || !d->contains("experts_before")) continue;
      for (const auto& s : selections((*d)["experts_before"])) ++before.counts[f->second][s], ++before.slots[f->second];
      for (const auto& s : selections((*d)["experts_after"])) ++after.counts[f->second][s], ++after.slots[f->second];
      const auto c = cue.find(id);
      if (c != cue.end() && c->second != f->second) cued.emplace_back(c->second, *d);
    }
    if (ci == 0) {
      for (const auto& [f, counts] : before.counts)
        for (std::size_t c = 0; c < in.critical.size(); ++c) {
          std::vector<std::pair<int, int>> ranked;  // (-count, expert)
          for (int e = 0; e < E; ++e) {
            auto it = counts.find({static_cast<int>(c), e});
            ranked.emplace_back(-(it == counts.end() ? 0 : it->second), e);
          }
          std::sort(ranked.begin(), ranked.end());
          for (int j = 0; j < top_k && j < E; ++j) home[f].insert({static_cast<int>(c), ranked[j].second});
        }
    }
    auto home_share = [&](const Usage& u, const std::string& f, const std::string& of) {
      auto h = home.find(of);
      if (h == home.end() || !u.slots.count(f) || u.slots.at(f) == 0) return 0.0;
      int n = 0;
      for (const auto& [s, c] : u.counts.at(f)) n += h->second.count(s) ? c : 0;
      return static_cast<double>(n) / u.slots.at(f);
    };
    if (!before.counts.empty()) {
      text += fmt::format(
          "Expert usage at the answer position, critical MoE layers: share of a family's top-{} selections that "
          "fall on its home experts (the {} experts per layer its items use most in the {} condition before "
          "re-mixing), and on the home experts of the other families (mean over them). Chance: {:.1f}%.\n\n"
          "| family | home, before | home, after NGD | others' home, before | others' home, after NGD | top experts before | top experts after |\n"
          "|---|---:|---:|---:|---:|---|---|\n",
          top_k, top_k, in.conditions[0].name, 100.0 * top_k / E);
      nlohmann::json U = nlohmann::json::object();
      for (const auto& [f, counts] : before.counts) {
        double other_b = 0, other_a = 0;
        int others = 0;
        for (const auto& [g, _] : home)
          if (g != f) other_b += home_share(before, f, g), other_a += home_share(after, f, g), ++others;
        if (others) other_b /= others, other_a /= others;
        auto top = [&](const Usage& u) {
          std::vector<std::pair<int, int>> per_expert(static_cast<std::size_t>(E));
          for (int e = 0; e < E; ++e) per_expert[static_cast<std::size_t>(e)] = {0, e};
          for (const auto& [s, c] : u.counts.at(f)) per_expert[static_cast<std::size_t>(s.second)].first -= c;
          std::sort(per_expert.begin(), per_expert.end());
          std::string t;
          for (int j = 0; j < 3 && j < E; ++j)
            t += fmt::format("{}e{} {}%", j ? ", " : "", per_expert[static_cast<std::size_t>(j)].second,
                             pct(-per_expert[static_cast<std::size_t>(j)].first / static_cast<double>(u.slots.at(f))));
          return t;
        };
        const double hb = home_share(before, f, f), ha = home_share(after, f, f);
        text += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", f, pct(hb), pct(ha), pct(other_b), pct(other_a),
                            top(before), top(after));
        U[f] = {{"home_before", hb}, {"home_after", ha}, {"others_home_before", other_b}, {"others_home_after", other_a}};
      }
      text += "\n";
      J["expert_usage"] = U;
      for (const auto& [c, d] : cued) {
        const auto h = home.find(c);
        if (h == home.end()) continue;
        for (const auto& s : selections(d["experts_before"])) cue_before += h->second.count(s) ? 1 : 0, ++cue_slots;
        for (const auto& s : selections(d["experts_after"])) cue_after += h->second.count(s) ? 1 : 0;
      }
      if (cue_slots) {
        J["cue_family_home"] = {{"before", static_cast<double>(cue_before) / cue_slots},
                                {"after", static_cast<double>(cue_after) / cue_slots}};
        text += fmt::format(
            "Items whose cue is another family's: {}% of their selections fall on the cue family's home experts "
            "before re-mixing, {}% after NGD.\n\n",
            pct(static_cast<double>(cue_before) / cue_slots), pct(static_cast<double>(cue_after) / cue_slots));
      }
    }

    // 3. How often an item's neighbours share its family.
    int same = 0, total = 0;
    for (const auto& rec : records) {
      const auto f = family.find(rec["id"].get<std::string>());
      const auto* d = details_of(rec, "ngd");
      if (f == family.end() || !d || !d->contains("neighbours")) continue;
      for (const auto& n : (*d)["neighbours"]) {
        const auto g = ref_family.find(n["id"].get<std::string>());
        same += g != ref_family.end() && g->second == f->second;
        ++total;
      }
    }
    if (total) {
      J["neighbours_same_family"] = static_cast<double>(same) / total;
      text += fmt::format("Neighbours that share the item's family: {}% of {} (chance with {} families: {:.1f}%).\n\n",
                          pct(static_cast<double>(same) / total), total, refs_by_family.size(),
                          refs_by_family.empty() ? 0.0 : 100.0 / static_cast<double>(refs_by_family.size()));
    }

    // 4. Pathway distance to the correct references of the item's own family, wrong vs right.
    const auto items = data::read_task("generic", cond.data_file).items;
    std::map<std::string, const data::McItem*> by_id;
    for (const auto& it : items) by_id[it.id] = &it;
    std::vector<std::vector<int64_t>> prompts;
    std::vector<std::pair<std::string, bool>> meta;  // family, base right
    for (const auto& rec : records) {
      const auto id = rec["id"].get<std::string>();
      const auto f = family.find(id);
      if (f == family.end() || !by_id.count(id) || !refs_by_family.count(f->second)) continue;
      prompts.push_back(
          eval::encode_letter_request(*in.tok, *by_id[id], eval::context_length(in.model->config().max_position_embeddings))
              .ids);
      meta.emplace_back(f->second, prediction_of(rec, "base") == rec["gold"].get<int>());
    }
    double dist[2] = {0, 0};
    int count[2] = {0, 0};
    for (std::size_t s = 0; s < prompts.size(); s += 32) {
      const std::size_t e = std::min(prompts.size(), s + 32);
      model::ForwardOptions fo;
      fo.capture = true;
      fo.vocab_rows = {0};
      torch::NoGradGuard ng;
      const auto res = in.model->forward({prompts.begin() + static_cast<std::ptrdiff_t>(s),
                                          prompts.begin() + static_cast<std::ptrdiff_t>(e)}, fo);
      const auto paths = res.pathway.index_select(1, critical_index).to(torch::kFloat).reshape({static_cast<int64_t>(e - s), -1});
      for (std::size_t b = s; b < e; ++b) {
        const auto& idx = refs_by_family.at(meta[b].first);
        const auto own = ref_paths.index_select(0, torch::tensor(idx, torch::kLong));
        const double d = (own - paths[static_cast<int64_t>(b - s)].unsqueeze(0)).norm(2, 1).mean().item<double>();
        dist[meta[b].second] += d;
        ++count[meta[b].second];
      }
    }
    if (count[0] && count[1]) {
      J["distance_to_own_family"] = {{"wrong", dist[0] / count[0]}, {"right", dist[1] / count[1]},
                                     {"n_wrong", count[0]}, {"n_right", count[1]}};
      text += fmt::format(
          "Mean Euclidean distance of an item's pathway (critical layers) to the pathways of the correct "
          "references of its own family: base-wrong items {:.3f} (n = {}), base-right items {:.3f} (n = {}).\n",
          dist[0] / count[0], count[0], dist[1] / count[1], count[1]);
    }
    out.numbers["conditions"].push_back(J);
  }

  // Findings, from the numbers above.
  const auto& paper = paper_olmoe();
  const double paper_span = paper.at("oracle") - paper.at("base");
  for (const auto& cond : in.conditions) {
    const auto& a = acc[cond.name];
    if (!a.count("base")) continue;
    std::string s = fmt::format("{}: base {}%", cond.name, pct(a.at("base")));
    if (a.count("oracle"))
      s += fmt::format(", oracle {}% (an upper bound: {:+.1f} points are reachable by re-routing alone)",
                       pct(a.at("oracle")), 100.0 * (a.at("oracle") - a.at("base")));
    // A share of a gap of a point or two is noise, not a finding.
    const bool gap_measurable = a.count("oracle") && a.at("oracle") - a.at("base") >= 0.02;
    s += gap_measurable ? ". Change against base, and share of the base-to-oracle gap closed (paper, OLMoE average):"
                        : ". Change against base (the oracle gap is under 2 points, too small to share out; paper's "
                          "share of the gap in brackets):";
    for (const char* m : {"ngd", "kernel", "mode", "icl"}) {
      if (!a.count(m)) continue;
      const double paper_gap = (paper.at(m) - paper.at("base")) / paper_span;
      const auto g = gap[cond.name].find(m);
      const std::string closed = gap_measurable && g != gap[cond.name].end() ? fmt::format(", {:.0f}%", 100.0 * g->second) : "";
      s += fmt::format(" {} {:+.1f}{} ({:.0f}%);", m, 100.0 * (a.at(m) - a.at("base")), closed, 100.0 * paper_gap);
    }
    s.back() = '.';
    findings.push_back(s);
  }
  if (in.conditions.size() >= 2) {
    const auto& c0 = in.conditions[0].name;
    const auto& c1 = in.conditions[1].name;
    const auto& J = out.numbers["conditions"];
    if (J[0].contains("neighbours_same_family") && J[1].contains("neighbours_same_family"))
      findings.push_back(fmt::format("Neighbours share the item's family in {}% of cases ({}) and {}% ({}).",
                                     pct(J[0]["neighbours_same_family"].get<double>()), c0,
                                     pct(J[1]["neighbours_same_family"].get<double>()), c1));
    if (J[0].contains("expert_usage") && J[1].contains("expert_usage")) {
      double h0 = 0, h1 = 0, h1a = 0;
      int n = 0;
      for (const auto& [f, u] : J[1]["expert_usage"].items()) {
        if (!J[0]["expert_usage"].contains(f)) continue;
        h0 += J[0]["expert_usage"][f]["home_before"].get<double>();
        h1 += u["home_before"].get<double>();
        h1a += u["home_after"].get<double>();
        ++n;
      }
      if (n) {
        std::string s = fmt::format(
            "Routing: in {} a family's selections fall on its home experts {}% of the time (chance {:.1f}%); in {} "
            "{}% before re-mixing and {}% after NGD",
            c0, pct(h0 / n), 100.0 * top_k / E, c1, pct(h1 / n), pct(h1a / n));
        if (J[1].contains("cue_family_home"))
          s += fmt::format(", while the cue family's home experts get {}% before and {}% after",
                           pct(J[1]["cue_family_home"]["before"].get<double>()),
                           pct(J[1]["cue_family_home"]["after"].get<double>()));
        findings.push_back(s + ".");
      }
    }
    for (const auto& Jc : J)
      if (Jc.contains("distance_to_own_family"))
        findings.push_back(fmt::format(
            "{}: base-wrong items lie {:.3f} from their family's correct reference pathways, base-right items {:.3f}.",
            Jc["condition"].get<std::string>(), Jc["distance_to_own_family"]["wrong"].get<double>(),
            Jc["distance_to_own_family"]["right"].get<double>()));
  }
  for (const auto& f : findings) out.findings += "- " + f + "\n";
  out.text = "## Mechanism\n" + text + "\n## Findings\n\n" + out.findings;
  out.numbers["findings"] = findings;
  (void)in.limit;
  return out;
}

}  // namespace c3po::cli
