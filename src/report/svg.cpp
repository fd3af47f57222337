#include "report/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "report/html.h"

namespace c3po::report {
namespace {

constexpr const char* kSeriesColours[] = {"#9ca3af", "#e6550d", "#3182bd", "#31a354"};

void open_svg(std::string& out, double width, double height, const std::string& label) {
  fmt::format_to(std::back_inserter(out),
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                 "role=\"img\" aria-label=\"{2}\" font-family=\"sans-serif\" font-size=\"12\">\n",
                 coord(width), coord(height), escape(label));
}

void text(std::string& out, double x, double y, const std::string& s, const char* anchor = "middle",
          const char* extra = "") {
  fmt::format_to(std::back_inserter(out), "<text x=\"{}\" y=\"{}\" text-anchor=\"{}\"{}>{}</text>\n", coord(x),
                 coord(y), anchor, extra, escape(s));
}

void line(std::string& out, double x1, double y1, double x2, double y2, const char* stroke,
          const char* extra = "") {
  fmt::format_to(std::back_inserter(out),
                 "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\"{}/>\n", coord(x1), coord(y1),
                 coord(x2), coord(y2), stroke, extra);
}

double clamp01(double v) { return std::isfinite(v) ? std::clamp(v, 0.0, 1.0) : 0.0; }

// Smallest of 1, 2, 5 x 10^k (k >= 0) that is at least `raw`: integer count ticks.
std::size_t nice_step(double raw) {
  std::size_t base = 1;
  for (;;) {
    for (std::size_t m : {1, 2, 5})
      if (static_cast<double>(m * base) >= raw) return m * base;
    base *= 10;
  }
}

}  // namespace

std::string heat_colour(double t) {
  t = clamp01(t);
  struct Rgb { double r, g, b; };
  constexpr Rgb lo{247, 251, 255}, mid{107, 174, 214}, hi{8, 48, 107};
  const Rgb a = t < 0.5 ? lo : mid, b = t < 0.5 ? mid : hi;
  const double u = t < 0.5 ? t / 0.5 : (t - 0.5) / 0.5;
  auto mix = [u](double x, double y) { return static_cast<int>(std::lround(x + (y - x) * u)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b));
}

std::string accuracy_chart(const std::string& title, const std::vector<AccuracyBar>& bars) {
  constexpr double left = 64, right = 20, top = 44, bottom = 64, slot = 84;
  constexpr double plot = kAccuracyPlotHeight;
  const double width = std::max(360.0, left + slot * static_cast<double>(bars.size()) + right);
  const double height = top + plot + bottom;
  auto y_of = [&](double v) { return top + plot * (1.0 - clamp01(v)); };

  std::string out;
  open_svg(out, width, height, title);
  text(out, left, 20, title, "start", " font-weight=\"bold\" font-size=\"14\"");
  for (int k = 0; k <= 5; ++k) {
    const double v = 0.2 * k, y = y_of(v);
    line(out, left, y, width - right, y, "#e5e7eb");
    line(out, left - 5, y, left, y, "#333");
    text(out, left - 8, y + 4, fmt::format("{}%", 20 * k), "end");
  }
  line(out, left, top, left, top + plot, "#333");
  line(out, left, top + plot, width - right, top + plot, "#333");
  fmt::format_to(std::back_inserter(out),
                 "<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">accuracy</text>\n",
                 coord(top + plot / 2), coord(top + plot / 2));

  bool any_upper_bound = false;
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    const double acc = clamp01(b.accuracy);
    const double cx = left + slot * (static_cast<double>(i) + 0.5);
    const double bw = slot * 0.56;
    const char* fill = b.upper_bound ? "#ffffff" : (i == 0 ? kSeriesColours[0] : kSeriesColours[2]);
    const char* stroke = b.upper_bound ? " stroke=\"#444\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"" : "";
    std::string tip = fmt::format("{}: {}", b.label, percent(b.accuracy));
    if (b.low && b.high) tip += fmt::format(" (95% interval {} to {})", percent(*b.low), percent(*b.high));
    if (b.upper_bound) tip += ", upper bound";
    fmt::format_to(std::back_inserter(out),
                   "<rect class=\"bar{}\" data-label=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                   "fill=\"{}\"{}><title>{}</title></rect>\n",
                   b.upper_bound ? " upper-bound" : "", escape(b.label), coord(cx - bw / 2), coord(y_of(acc)),
                   coord(bw), coord(plot * acc), fill, stroke, escape(tip));
    double top_of_mark = y_of(acc);
    if (b.low && b.high) {
      const double y_lo = y_of(*b.low), y_hi = y_of(*b.high);
      const char* whisker = " class=\"whisker\" stroke-width=\"1.5\"";
      line(out, cx, y_hi, cx, y_lo, "#111", whisker);
      line(out, cx - 7, y_hi, cx + 7, y_hi, "#111", whisker);
      line(out, cx - 7, y_lo, cx + 7, y_lo, "#111", whisker);
      top_of_mark = std::min(top_of_mark, y_hi);
    }
    text(out, cx, top_of_mark - 6, percent(b.accuracy));
    text(out, cx, top + plot + 18, b.label);
    if (b.upper_bound) {
      text(out, cx, top + plot + 33, "(upper bound)", "middle", " font-style=\"italic\" fill=\"#555\"");
      any_upper_bound = true;
    }
  }
  text(out, left, height - 8,
       any_upper_bound ? "Whiskers: Wilson 95% interval. Dashed outline: oracle, uses the gold label (upper bound)."
                       : "Whiskers: Wilson 95% interval.",
       "start", " font-size=\"11\" fill=\"#555\"");
  out += "</svg>\n";
  return out;
}

std::string expert_heatmap(const std::vector<int>& layers, const std::vector<int>& experts,
                           const std::vector<HeatmapPanel>& panels) {
  // Panels stacked vertically so that one expert is one column through all of them.
  constexpr double left = 78, cw = 28, ch = 20, title_h = 20, gap = 10, right = 16;
  const double rows = static_cast<double>(layers.size()), cols = static_cast<double>(experts.size());
  const double first_panel = 52, panel_h = title_h + rows * ch + gap;
  const double width = std::max(460.0, left + cols * cw + right);
  const double legend_y = first_panel + static_cast<double>(panels.size()) * panel_h + 8;
  const double height = legend_y + 46;

  double max_weight = 0;
  for (const auto& p : panels)
    for (const auto& row : p.cells)
      for (const auto& c : row)
        if (c && std::isfinite(*c)) max_weight = std::max(max_weight, *c);
  const double scale = max_weight > 0 ? max_weight : 1.0;

  std::string out;
  open_svg(out, width, height, "expert weights per critical layer");
  text(out, 8, 18, "Top-k routing weights: critical layers (rows) by expert (columns)", "start",
       " font-weight=\"bold\"");
  text(out, left - 6, 44, "expert", "end", " font-size=\"10\" fill=\"#555\"");
  for (std::size_t c = 0; c < experts.size(); ++c)
    text(out, left + (static_cast<double>(c) + 0.5) * cw, 44, std::to_string(experts[c]), "middle",
         " font-size=\"10\" fill=\"#555\"");
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const double y0 = first_panel + static_cast<double>(p) * panel_h;
    text(out, left, y0 + 14, panels[p].title, "start", " font-weight=\"bold\" font-size=\"11\"");
    for (std::size_t r = 0; r < layers.size(); ++r) {
      const double y = y0 + title_h + static_cast<double>(r) * ch;
      text(out, left - 6, y + ch / 2 + 4, fmt::format("layer {}", layers[r]), "end", " font-size=\"11\"");
      for (std::size_t c = 0; c < experts.size(); ++c) {
        std::optional<double> w;
        if (r < panels[p].cells.size() && c < panels[p].cells[r].size()) w = panels[p].cells[r][c];
        const bool empty = !w || !std::isfinite(*w);
        const std::string tip =
            fmt::format("{}: layer {}, expert {}: {}", panels[p].title, layers[r], experts[c],
                        empty ? std::string("not in top-k") : fmt::format("{:.4f}", *w));
        fmt::format_to(std::back_inserter(out),
                       "<rect class=\"cell{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
                       "stroke=\"#ffffff\"><title>{}</title></rect>\n",
                       empty ? " empty" : "", coord(left + static_cast<double>(c) * cw), coord(y), coord(cw),
                       coord(ch), empty ? "#eeeeee" : heat_colour(*w / scale), escape(tip));
      }
    }
  }

  // Legend: ten swatches from 0 to the largest weight, and the empty-cell swatch.
  constexpr int steps = 10;
  constexpr double sw = 22;
  for (int k = 0; k < steps; ++k)
    fmt::format_to(std::back_inserter(out),
                   "<rect class=\"legend\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"12\" fill=\"{}\"/>\n",
                   coord(left + k * sw), coord(legend_y), coord(sw), heat_colour((k + 0.5) / steps));
  text(out, left, legend_y + 26, "0", "middle", " font-size=\"11\"");
  text(out, left + steps * sw, legend_y + 26, fmt::format("{:.3f}", max_weight), "middle", " font-size=\"11\"");
  text(out, left - 6, legend_y + 10, "weight", "end", " font-size=\"11\"");
  const double ex = left + steps * sw + 30;
  fmt::format_to(std::back_inserter(out),
                 "<rect class=\"legend\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"12\" fill=\"#eeeeee\"/>\n",
                 coord(ex), coord(legend_y), coord(sw));
  text(out, ex + sw + 6, legend_y + 10, "not in the top-k", "start", " font-size=\"11\"");
  out += "</svg>\n";
  return out;
}

std::string usage_histogram(const std::string& title, const std::vector<UsageSeries>& series) {
  const std::size_t ns = std::min<std::size_t>(series.size(), std::size(kSeriesColours));
  std::size_t n_experts = 0, max_count = 0;
  for (std::size_t s = 0; s < ns; ++s) {
    n_experts = std::max(n_experts, series[s].counts.size());
    for (auto c : series[s].counts) max_count = std::max(max_count, c);
  }
  constexpr double left = 52, right = 16, top = 48, plot = 150, bottom = 44, min_width = 380;
  // Few experts: wider groups filling the minimum width; many: 8-pixel bars.
  const double n_groups = static_cast<double>(std::max<std::size_t>(n_experts, 1));
  const double group = std::max(static_cast<double>(ns) * 8 + 8, (min_width - left - right) / n_groups);
  const double bar_w = std::min(14.0, (group - 8) / static_cast<double>(std::max<std::size_t>(ns, 1)));
  const double width = std::max(min_width, left + group * static_cast<double>(n_experts) + right);
  const double height = top + plot + bottom;
  const std::size_t step = nice_step(std::max(1.0, static_cast<double>(max_count) / 5.0));
  const std::size_t y_max = std::max<std::size_t>(step, (max_count + step - 1) / step * step);
  auto y_of = [&](double v) { return top + plot * (1.0 - v / static_cast<double>(y_max)); };

  std::string out;
  open_svg(out, width, height, title);
  text(out, 8, 18, title, "start", " font-weight=\"bold\"");
  double lx = 8;
  for (std::size_t s = 0; s < ns; ++s) {
    fmt::format_to(std::back_inserter(out), "<rect x=\"{}\" y=\"28\" width=\"12\" height=\"10\" fill=\"{}\"/>\n",
                   coord(lx), kSeriesColours[s]);
    text(out, lx + 16, 37, series[s].label, "start", " font-size=\"11\"");
    lx += 16 + 7.0 * static_cast<double>(series[s].label.size()) + 18;
  }
  for (std::size_t v = 0; v <= y_max; v += step) {
    const double y = y_of(static_cast<double>(v));
    line(out, left, y, width - right, y, "#e5e7eb");
    text(out, left - 6, y + 4, std::to_string(v), "end", " font-size=\"11\"");
  }
  line(out, left, top, left, top + plot, "#333");
  line(out, left, top + plot, width - right, top + plot, "#333");
  fmt::format_to(std::back_inserter(out),
                 "<text x=\"14\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 14 {})\">"
                 "items</text>\n",
                 coord(top + plot / 2), coord(top + plot / 2));
  const std::size_t label_every =
      std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(20.0 / group)));
  for (std::size_t e = 0; e < n_experts; ++e) {
    const double gx = left + group * static_cast<double>(e);
    for (std::size_t s = 0; s < ns; ++s) {
      const std::size_t c = e < series[s].counts.size() ? series[s].counts[e] : 0;
      const double h = plot * static_cast<double>(c) / static_cast<double>(y_max);
      fmt::format_to(std::back_inserter(out),
                     "<rect class=\"usage s{}\" data-expert=\"{}\" data-count=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" "
                     "height=\"{}\" fill=\"{}\"><title>{}: expert {} in the top-k of {} items</title></rect>\n",
                     s, e, c, coord(gx + (group - bar_w * static_cast<double>(ns)) / 2 + static_cast<double>(s) * bar_w), coord(top + plot - h), coord(bar_w),
                     coord(h), kSeriesColours[s], escape(series[s].label), e, c);
    }
    if (e % label_every == 0)
      text(out, gx + group / 2, top + plot + 14, std::to_string(e), "middle", " font-size=\"10\"");
  }
  text(out, left + (width - left - right) / 2, height - 8, "expert", "middle", " font-size=\"11\"");
  out += "</svg>\n";
  return out;
}

}  // namespace c3po::report
