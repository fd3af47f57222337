#include "report/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include "io/json_file.h"
#include "report/html.h"
#include "report/svg.h"

namespace c3po::report {
namespace {

constexpr const char* kStyle = R"(body{font-family:sans-serif;margin:24px auto;max-width:1180px;color:#111;line-height:1.4}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:0 0 8px 0}
.meta{color:#555;font-size:13px}.meta span{margin-right:16px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f5f5f5}
td.text,th.text{text-align:left}
tr.upper-bound td{font-style:italic;background:#fafafa;color:#444}
.tag{display:inline-block;font-size:11px;font-style:normal;border:1px dashed #666;border-radius:3px;padding:0 4px;margin-left:6px}
.note{color:#555;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.item-body{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:8px 0}
figure.heatmap,figure.usage{min-width:0;max-width:100%;overflow-x:auto}
figure.heatmap svg,figure.usage svg{max-width:none}
.example{border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:16px 0}
.question{white-space:pre-wrap;background:#f8f8f8;padding:8px;border-radius:4px}
ol.choices li.gold{font-weight:bold}
.right{color:#1a7f37}.wrong{color:#c62828}
.missing{color:#888;font-style:italic}
svg{max-width:100%;height:auto}
)";

using Out = std::back_insert_iterator<std::string>;

const MethodAnswer* find_answer(const ItemRecord& r, const std::string& method) {
  auto it = r.methods.find(method);
  return it == r.methods.end() ? nullptr : &it->second;
}

bool has_experts(const MethodAnswer& a) { return !a.experts_before.empty() || !a.experts_after.empty(); }

// The method whose neighbours and experts are shown: the requested one if any item recorded
// experts for it, else the first in method order that did.
std::string shown_remix_method(const RunData& run, const std::string& wanted) {
  auto recorded = [&](const std::string& m) {
    return std::any_of(run.items.begin(), run.items.end(), [&](const ItemRecord& r) {
      const MethodAnswer* a = find_answer(r, m);
      return a && has_experts(*a);
    });
  };
  if (recorded(wanted)) return wanted;
  for (const auto& m : run.method_order)
    if (m != "base" && recorded(m)) return m;
  return "";
}

bool is_upper_bound(const RunData& run, const std::string& method) {
  if (method == "oracle") return true;
  for (const auto& t : run.tasks)
    for (const auto& m : t.methods)
      if (m.method == method && m.upper_bound) return true;
  return false;
}

std::string seconds_text(std::optional<double> s) {
  if (!s) return "-";
  if (*s < 1.0) return fmt::format("{:.1f} ms", 1000.0 * *s);
  return fmt::format("{:.2f} s", *s);
}

std::string count_text(std::optional<std::size_t> c) { return c ? std::to_string(*c) : std::string("-"); }

void results_table(Out out, const RunData& run) {
  fmt::format_to(out,
                 "<table class=\"results\">\n<thead><tr><th class=\"text\">task</th><th class=\"text\">method</th>"
                 "<th>n</th><th>accuracy</th><th>95% interval</th><th>change vs base</th>"
                 "<th>flips wrong&rarr;right</th><th>flips right&rarr;wrong</th><th>gap closed</th>"
                 "<th>time / item</th><th>FLOPs / item</th></tr></thead>\n<tbody>\n");
  bool any_upper_bound = false;
  for (const auto& t : run.tasks) {
    for (const auto& m : t.methods) {
      const bool base = m.method == "base";
      any_upper_bound |= m.upper_bound;
      fmt::format_to(out, "<tr data-task=\"{}\" data-method=\"{}\"{}>", escape(t.task), escape(m.method),
                     m.upper_bound ? " class=\"upper-bound\"" : "");
      fmt::format_to(out, "<td class=\"text\">{}</td><td class=\"text\">{}{}</td>", escape(t.task), escape(m.method),
                     m.upper_bound ? "<span class=\"tag\">upper bound</span>" : "");
      const std::string interval = m.interval_low && m.interval_high
                                       ? fmt::format("{} &ndash; {}", percent(m.interval_low), percent(m.interval_high))
                                       : std::string("-");
      fmt::format_to(out, "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>", m.n,
                     percent(m.accuracy), interval, base ? "-" : signed_points(m.change_vs_base),
                     base ? "-" : count_text(m.wrong_to_right), base ? "-" : count_text(m.right_to_wrong),
                     base || !m.gap_closed ? std::string("-") : percent(m.gap_closed, 0));
      fmt::format_to(out, "<td>{}</td><td>{}</td></tr>\n", seconds_text(m.seconds_per_item),
                     m.flops_per_item ? si_number(m.flops_per_item) + "FLOP" : std::string("-"));
    }
  }
  fmt::format_to(out, "</tbody>\n</table>\n");
  fmt::format_to(out,
                 "<p class=\"note\">Accuracy with its Wilson 95% interval; change in percentage points against "
                 "base; flips count items whose answer became right (wrong&rarr;right) or wrong (right&rarr;wrong) "
                 "against base; gap closed = share of the base-to-oracle accuracy gap.{}</p>\n",
                 any_upper_bound ? " <b>The oracle re-mixes with each test item's own gold label: it is an upper "
                                   "bound for analysis, never a method to deploy.</b>"
                                 : "");
}

void accuracy_charts(Out out, const RunData& run) {
  fmt::format_to(out, "<div class=\"charts\">\n");
  for (const auto& t : run.tasks) {
    std::vector<AccuracyBar> bars;
    for (const auto& m : t.methods)
      if (m.accuracy) bars.push_back({m.method, *m.accuracy, m.interval_low, m.interval_high, m.upper_bound});
    if (bars.empty()) continue;  // a task without items has nothing to draw
    fmt::format_to(out, "<figure class=\"accuracy\">{}</figure>\n",
                   accuracy_chart(fmt::format("{}: accuracy per method (n = {})", t.task, t.n), bars));
  }
  fmt::format_to(out, "</div>\n");
}

// Items whose answer some method changed against base, non-oracle changes first; when no method
// changed any answer, the first items that recorded experts.
std::vector<const ItemRecord*> pick_examples(const RunData& run, const std::string& remix, std::size_t max) {
  std::vector<const ItemRecord*> out;
  auto changed = [&](const ItemRecord& r, bool upper_bound_methods) {
    const MethodAnswer* base = find_answer(r, "base");
    if (!base) return false;
    for (const auto& [name, a] : r.methods)
      if (name != "base" && is_upper_bound(run, name) == upper_bound_methods && a.prediction != base->prediction)
        return true;
    return false;
  };
  for (bool upper : {false, true})
    for (const auto& r : run.items)
      if (out.size() < max && changed(r, upper) && std::find(out.begin(), out.end(), &r) == out.end())
        out.push_back(&r);
  if (out.empty())
    for (const auto& r : run.items) {
      const MethodAnswer* a = find_answer(r, remix);
      if (out.size() < max && a && has_experts(*a)) out.push_back(&r);
    }
  return out;
}

std::vector<HeatmapPanel> heatmap_panels(const RunData& run, const ItemRecord& r, const std::string& remix,
                                         std::vector<int>& layers, std::vector<int>& experts) {
  // (title, layer lists) per panel: the base pathway, then every method's re-mixed one.
  std::vector<std::pair<std::string, const std::vector<LayerExperts>*>> sources;
  const MethodAnswer* main = find_answer(r, remix);
  if (main && !main->experts_before.empty()) sources.emplace_back("before (base pathway)", &main->experts_before);
  for (const auto& m : run.method_order) {
    const MethodAnswer* a = find_answer(r, m);
    if (m != "base" && a && !a->experts_after.empty())
      sources.emplace_back("after " + m + (is_upper_bound(run, m) ? " (upper bound)" : ""), &a->experts_after);
  }
  std::set<int> layer_set, expert_set;
  for (const auto& [title, lists] : sources)
    for (const auto& le : *lists) {
      layer_set.insert(le.moe_layer);
      for (const auto& e : le.experts) expert_set.insert(e.expert);
    }
  layers.assign(layer_set.begin(), layer_set.end());
  experts.assign(expert_set.begin(), expert_set.end());
  std::vector<HeatmapPanel> panels;
  for (const auto& [title, lists] : sources) {
    HeatmapPanel p;
    p.title = title;
    p.cells.assign(layers.size(), std::vector<std::optional<double>>(experts.size()));
    for (const auto& le : *lists) {
      const auto row = std::lower_bound(layers.begin(), layers.end(), le.moe_layer) - layers.begin();
      for (const auto& e : le.experts) {
        const auto col = std::lower_bound(experts.begin(), experts.end(), e.expert) - experts.begin();
        p.cells[static_cast<std::size_t>(row)][static_cast<std::size_t>(col)] = e.weight;
      }
    }
    panels.push_back(std::move(p));
  }
  return panels;
}

std::string probability_text(const std::vector<double>& probs, int index) {
  if (index < 0 || static_cast<std::size_t>(index) >= probs.size()) return "-";
  return fmt::format("{:.3f}", probs[static_cast<std::size_t>(index)]);
}

void example(Out out, const RunData& run, const ItemRecord& r, const std::string& remix) {
  fmt::format_to(out, "<section class=\"example\" data-id=\"{}\">\n<h3>{} &middot; {}</h3>\n", escape(r.id),
                 escape(r.task), escape(r.id));
  if (r.question) fmt::format_to(out, "<p class=\"question\">{}</p>\n", escape(*r.question));
  else fmt::format_to(out, "<p class=\"missing\">The run folder has no text for this item.</p>\n");
  if (!r.choices.empty()) {
    fmt::format_to(out, "<ol class=\"choices\" type=\"A\">\n");
    for (std::size_t c = 0; c < r.choices.size(); ++c) {
      const bool gold = static_cast<int>(c) == r.gold;
      fmt::format_to(out, "<li{}>{}{}</li>\n", gold ? " class=\"gold\"" : "", escape(r.choices[c]),
                     gold ? " <span class=\"right\">(gold)</span>" : "");
    }
    fmt::format_to(out, "</ol>\n");
  } else {
    fmt::format_to(out, "<p>Gold answer: <b>{}</b></p>\n", choice_letter(r.gold));
  }

  fmt::format_to(out,
                 "<table class=\"answers\"><thead><tr><th class=\"text\">method</th><th>answer</th><th>p(answer)</th>"
                 "<th>p(gold)</th><th class=\"text\">result</th><th>&alpha;</th><th>tail re-runs</th>"
                 "<th>loss first &rarr; last</th></tr></thead>\n<tbody>\n");
  for (const auto& m : run.method_order) {
    const MethodAnswer* a = find_answer(r, m);
    if (!a) continue;
    const bool right = a->prediction == r.gold;
    const std::string losses = a->losses.empty() ? std::string("-")
                                                 : fmt::format("{:.4f} &rarr; {:.4f} ({} steps)", a->losses.front(),
                                                               a->losses.back(), a->losses.size());
    fmt::format_to(out,
                   "<tr data-method=\"{}\"{}><td class=\"text\">{}{}</td><td>{}</td><td>{}</td><td>{}</td>"
                   "<td class=\"text {}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                   escape(m), is_upper_bound(run, m) ? " class=\"upper-bound\"" : "", escape(m),
                   is_upper_bound(run, m) ? "<span class=\"tag\">upper bound</span>" : "",
                   choice_letter(a->prediction), probability_text(a->letter_probs, a->prediction),
                   probability_text(a->letter_probs, r.gold), right ? "right" : "wrong",
                   right ? "&#10003; right" : "&#10007; wrong",
                   a->alpha ? fmt::format("{:.2f}", *a->alpha) : std::string("-"),
                   a->tail_reruns ? std::to_string(*a->tail_reruns) : std::string("-"), losses);
  }
  fmt::format_to(out, "</tbody></table>\n");

  // Neighbours and heatmap side by side where the page is wide enough.
  fmt::format_to(out, "<div class=\"item-body\"><div>\n");
  const MethodAnswer* main = find_answer(r, remix);
  const MethodAnswer* with_neighbours = main && main->neighbours ? main : nullptr;
  std::string neighbours_of = remix;
  if (!with_neighbours)
    for (const auto& m : run.method_order)
      if (const MethodAnswer* a = find_answer(r, m); a && a->neighbours) {
        with_neighbours = a;
        neighbours_of = m;
        break;
      }
  if (with_neighbours) {
    fmt::format_to(out,
                   "<p class=\"note\">Neighbours used by {} ({}):</p>\n<table class=\"neighbours\"><thead><tr>"
                   "<th>#</th><th class=\"text\">reference id</th><th class=\"text\">source</th><th>similarity</th>"
                   "<th>kernel weight</th></tr></thead>\n<tbody>\n",
                   escape(neighbours_of), with_neighbours->neighbours->size());
    std::size_t k = 0;
    for (const auto& n : *with_neighbours->neighbours)
      fmt::format_to(out,
                     "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td></tr>\n",
                     ++k, escape(n.id), escape(n.task),
                     n.similarity ? fmt::format("{:.4f}", *n.similarity) : std::string("-"),
                     n.weight ? fmt::format("{:.4f}", *n.weight) : std::string("-"));
    fmt::format_to(out, "</tbody></table>\n");
  }

  fmt::format_to(out, "</div>\n");
  std::vector<int> layers, experts;
  const auto panels = heatmap_panels(run, r, remix, layers, experts);
  if (!panels.empty() && !layers.empty() && !experts.empty())
    fmt::format_to(out, "<figure class=\"heatmap\">{}</figure>\n", expert_heatmap(layers, experts, panels));
  fmt::format_to(out, "</div>\n</section>\n");
}

void usage_section(Out out, const RunData& run, const std::string& remix, std::size_t num_experts) {
  std::map<int, std::vector<std::size_t>> before, after;  // moe layer -> count per expert
  std::size_t items = 0, max_expert = 0;
  auto add = [&](std::map<int, std::vector<std::size_t>>& counts, const std::vector<LayerExperts>& lists) {
    for (const auto& le : lists)
      for (const auto& e : le.experts) {
        auto& c = counts[le.moe_layer];
        const auto expert = static_cast<std::size_t>(e.expert);
        if (c.size() <= expert) c.resize(expert + 1, 0);
        ++c[expert];
        max_expert = std::max(max_expert, expert);
      }
  };
  for (const auto& r : run.items) {
    const MethodAnswer* a = find_answer(r, remix);
    if (!a || !has_experts(*a)) continue;
    ++items;
    add(before, a->experts_before);
    add(after, a->experts_after);
  }
  if (items == 0) {
    fmt::format_to(out, "<p class=\"missing\">No re-mixing method recorded its experts in this run.</p>\n");
    return;
  }
  const std::size_t n_experts = std::max(num_experts, max_expert + 1);
  std::set<int> layers;
  for (const auto& [l, c] : before) layers.insert(l);
  for (const auto& [l, c] : after) layers.insert(l);
  fmt::format_to(out,
                 "<p class=\"note\">For each critical MoE layer, how many of the {} test items have each expert among "
                 "the top-k of the last token's routing: the base pathway against the pathway after {}.</p>\n"
                 "<div class=\"charts\">\n",
                 items, escape(remix));
  for (int l : layers) {
    std::vector<std::size_t> b = before[l], a = after[l];
    b.resize(n_experts, 0);
    a.resize(n_experts, 0);
    fmt::format_to(out, "<figure class=\"usage\">{}</figure>\n",
                   usage_histogram(fmt::format("MoE layer {}: items with the expert in the top-k", l),
                                   {{"before (base)", b}, {"after " + remix, a}}));
  }
  fmt::format_to(out, "</div>\n");
}

}  // namespace

std::string render_report(const RunData& run, const ReportOptions& options) {
  std::string page;
  Out out(page);
  fmt::format_to(out,
                 "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p class=\"meta\">",
                 escape(options.title), kStyle, escape(options.title));
  auto meta = [&](const char* label, const std::string& value) {
    if (!value.empty()) fmt::format_to(out, "<span>{}: <b>{}</b></span>", label, escape(value));
  };
  meta("model", run.model_path);
  meta("type", run.model_type);
  meta("fingerprint", run.model_fingerprint.substr(0, 16));
  meta("c3po", run.c3po_version);
  meta("run folder", run.run_dir);
  fmt::format_to(out, "</p>\n");

  fmt::format_to(out, "<h2>Results</h2>\n");
  results_table(out, run);
  fmt::format_to(out, "<h2>Accuracy per method</h2>\n");
  accuracy_charts(out, run);

  const std::string remix = shown_remix_method(run, options.remix_method);
  const auto examples = pick_examples(run, remix, options.max_examples);
  fmt::format_to(out, "<h2>Examples</h2>\n");
  if (examples.empty()) {
    fmt::format_to(out, "<p class=\"missing\">No item to show: no method changed a base answer.</p>\n");
  } else {
    fmt::format_to(out,
                   "<p class=\"note\">Up to {} test items where a method changed the base answer. Heatmaps: the "
                   "top-k experts' routing weights of the last token per critical layer, before re-mixing and "
                   "after each method.</p>\n",
                   options.max_examples);
    for (const ItemRecord* r : examples) example(out, run, *r, remix);
  }
  fmt::format_to(out, "<h2>Expert usage</h2>\n");
  usage_section(out, run, remix, options.num_experts);
  for (const auto& [title, text] : options.extra_sections)
    fmt::format_to(out, "<h2>{}</h2>\n<pre>{}</pre>\n", escape(title), escape(text));
  fmt::format_to(out, "</body>\n</html>\n");
  return page;
}

void write_report(const std::string& run_dir, const std::string& out_html, const ReportOptions& options) {
  io::write_file_atomic(out_html, render_report(read_run(run_dir, options.questions_file), options));
}

}  // namespace c3po::report
