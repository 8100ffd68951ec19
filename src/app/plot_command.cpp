// `dpunet plot RUN_DIR`: training curves from RUN_DIR/metrics.jsonl to a PNG: the
// training loss, validation Dice per class, and throughput, each against the step.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/commands.h"
#include "app/plot_canvas.h"
#include "common/error.h"
#include "common/tick_labels.h"

namespace dpunet::app {
namespace {

struct Series {
  std::string name;
  Colour colour;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

struct Panel {
  std::string title;
  std::vector<Series> series;
  bool unit_range = false;  // Dice: always [0, 1]
};

constexpr Colour kInk{40, 40, 40}, kGrid{220, 220, 220};
const Colour kPalette[] = {{31, 119, 180},  {214, 39, 40},  {44, 160, 44},
                           {148, 103, 189}, {255, 127, 14}, {23, 190, 207}};

// Steps as they are: 1234, not 1.23e+03.
std::string step_label(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), v == std::trunc(v) && std::abs(v) < 1e15 ? "%.0f" : "%.6g", v);
  return text;
}

void draw_panel(Canvas& canvas, int top, int height, const Panel& panel) {
  const int right = canvas.width() - 30, plot_top = top + 40, bottom = top + height - 40;
  int left = 110;
  double x_min = std::numeric_limits<double>::max(), x_max = std::numeric_limits<double>::lowest();
  double y_min = x_min, y_max = x_max;
  for (const auto& s : panel.series) {
    for (const auto& [x, y] : s.points) {
      x_min = std::min(x_min, x), x_max = std::max(x_max, x), y_min = std::min(y_min, y), y_max = std::max(y_max, y);
    }
  }
  if (x_min > x_max) {
    canvas.text(left, top + 10, panel.title, kInk);
    canvas.rect(left, plot_top, right, bottom, kInk);
    canvas.text(left + 20, plot_top + 20, "no data", kInk);
    return;
  }
  if (panel.unit_range) y_min = 0, y_max = 1;
  // Half spans: a range from -1e308 to 1e308 overflows, its half does not. A series is
  // flat when its span is nothing next to its values (1e-300 to 2e-300 is not flat).
  const auto half_span = [](double low, double high) { return high / 2 - low / 2; };
  if (half_span(y_min, y_max) <= 1e-12 * std::max(std::abs(y_min), std::abs(y_max))) {
    const double pad = std::max(0.5, std::abs(y_min) * 1e-6);  // 0.5 is nothing to 1e17
    y_min -= pad, y_max += pad;
  }
  if (half_span(x_min, x_max) <= 1e-12 * std::max(std::abs(x_min), std::abs(x_max))) x_max = x_min + 1;
  // Quarters between the ends, interpolated: y_min + 4 quarters may overflow.
  std::vector<double> ticks;
  for (int i = 0; i <= 4; ++i) ticks.push_back(y_min * (1 - i / 4.0) + y_max * (i / 4.0));
  const std::vector<std::string> labels = tick_labels(ticks);
  for (const std::string& label : labels) left = std::max(left, Canvas::text_width(label) + 16);
  canvas.text(left, top + 10, panel.title, kInk);
  canvas.rect(left, plot_top, right, bottom, kInk);
  const double x_half = half_span(x_min, x_max), y_half = half_span(y_min, y_max);
  auto px = [&](double x) { return left + half_span(x_min, x) / x_half * (right - left); };
  auto py = [&](double y) { return bottom - half_span(y_min, y) / y_half * (bottom - plot_top); };
  for (int i = 1; i < 4; ++i) canvas.line(left + 1, py(ticks[i]), right - 1, py(ticks[i]), kGrid);
  for (int i = 0; i <= 4; ++i) {
    canvas.text(left - Canvas::text_width(labels[i]) - 8, static_cast<int>(py(ticks[i])) - 7, labels[i], kInk);
  }
  canvas.text(left, bottom + 10, step_label(x_min), kInk);
  const std::string last = step_label(x_max) + " step";
  canvas.text(right - Canvas::text_width(last), bottom + 10, last, kInk);
  int legend_x = left + Canvas::text_width(panel.title) + 30;
  for (const auto& s : panel.series) {
    for (size_t i = 1; i < s.points.size(); ++i) {
      canvas.line(px(s.points[i - 1].first), py(s.points[i - 1].second), px(s.points[i].first), py(s.points[i].second),
                  s.colour, 2);
    }
    if (s.points.size() == 1) {  // a dot, inside the frame even at its right edge
      const double x = std::min(px(s.points[0].first), right - 4.0), y = py(s.points[0].second);
      canvas.line(x, y, x + 3, y, s.colour, 3);
    }
    canvas.line(legend_x, top + 17, legend_x + 20, top + 17, s.colour, 3);
    canvas.text(legend_x + 26, top + 10, s.name, s.colour);
    legend_x += 26 + Canvas::text_width(s.name) + 24;
  }
}

// A value of a metrics row; none for null, which is how a NaN or infinite loss (a run
// that diverged) is written: such points are left out of the curve.
std::optional<double> value_of(const nlohmann::json& row, const char* key) {
  const nlohmann::json& v = row.at(key);
  if (v.is_null()) return std::nullopt;
  return v.get<double>();
}

void add_point(Series& series, double step, std::optional<double> value) {
  if (value) series.points.emplace_back(step, *value);
}

std::vector<Panel> read_panels(const std::string& path) {
  std::error_code ec;
  DPUNET_CHECK(!std::filesystem::is_directory(path, ec), path, ": is a folder, not the run's metrics file");
  std::ifstream in(path);
  DPUNET_CHECK(in, path, ": cannot read (is this a run directory?)");
  Panel loss{"train loss", {{"loss", kPalette[0], {}}}};
  Panel dice{"validation dice", {}, true};
  Panel speed{"samples/s", {{"global", kPalette[2], {}}}};
  int line_number = 0, skipped = 0, first_skipped = 0, records = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty()) continue;
    try {
      // Every field is read before any point is added: a row that fails halfway adds none.
      const nlohmann::json row = nlohmann::json::parse(line);
      const double step = row.at("step").get<double>();
      if (row.at("kind") == "train") {
        const auto loss_value = value_of(row, "loss"), speed_value = value_of(row, "samples_per_s");
        add_point(loss.series[0], step, loss_value);
        add_point(speed.series[0], step, speed_value);
      } else if (row.at("kind") == "val") {
        std::vector<std::optional<double>> per_class;
        for (const nlohmann::json& v : row.at("dice")) {
          per_class.push_back(v.is_null() ? std::nullopt : std::optional<double>(v.get<double>()));
        }
        const auto foreground = value_of(row, "foreground_dice");
        if (dice.series.empty()) {
          // Named as the shards name the classes, where the run wrote their names.
          const nlohmann::json names = row.value("class_names", nlohmann::json::array());
          for (size_t k = 1; k < per_class.size(); ++k) {
            std::string name =
                k < names.size() && names[k].is_string() ? names[k].get<std::string>() : "class " + std::to_string(k);
            if (name.size() > 20) name = name.substr(0, 19) + "~";  // the legend keeps to the canvas
            dice.series.push_back({name, kPalette[(k + 2) % 6], {}});
          }
          dice.series.push_back({"foreground", kInk, {}});
        }
        for (size_t k = 1; k < per_class.size() && k <= dice.series.size() - 1; ++k) {
          add_point(dice.series[k - 1], step, per_class[k]);
        }
        add_point(dice.series.back(), step, foreground);
      }
      ++records;
    } catch (const nlohmann::json::exception&) {
      // A line cut short by a killed run, say: the rest of the curves still count.
      if (skipped++ == 0) first_skipped = line_number;
    }
  }
  DPUNET_CHECK(records > 0, path, ": no metrics records",
               line_number > 0 ? " (no line is one: JSON with kind, step and the kind's values)" : " (empty)",
               "; nothing to plot");
  if (skipped > 0) {
    std::cerr << "plot: skipped " << skipped << " line(s) of " << path << " that are not metrics records (first: line "
              << first_skipped << ")\n";
  }
  return {loss, dice, speed};
}

}  // namespace

void add_plot_command(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto overwrite = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("plot", "Draw a run's loss, Dice and throughput curves to PNG");
  cmd->add_option("run_dir", *run_dir, "Run directory (holds metrics.jsonl)")->required();
  cmd->add_option("--out", *out, "PNG to write (default: RUN_DIR/curves.png, replaced at each plot)");
  cmd->add_flag("--overwrite", *overwrite, "Replace an existing --out file");
  cmd->callback([run_dir, out, overwrite] {
    // The picture goes to a .png: a slip of the keyboard must not replace metrics.jsonl
    // or a checkpoint with it.
    // By its ending, not std::filesystem's extension, which a name such as ".png" has none of.
    std::string lower = *out;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    const bool png = lower.size() >= 4 && lower.compare(lower.size() - 4, 4, ".png") == 0;
    DPUNET_CHECK(out->empty() || png, "plot: --out ", *out, " does not end in .png");
    // Another .png may be an image of its own (an input, a predicted mask): as export and
    // predict, only with --overwrite. The run's own curves.png is the plot's to refresh.
    std::error_code ec;
    DPUNET_CHECK(out->empty() || *overwrite || !std::filesystem::exists(*out, ec), "plot: --out ", *out,
                 " exists; give --overwrite to replace it");
    DPUNET_CHECK(!run_dir->empty(), "plot: an empty run directory (an unset variable?)");
    const std::vector<Panel> panels = read_panels(*run_dir + "/metrics.jsonl");
    constexpr int kWidth = 1000, kPanelHeight = 300;
    Canvas canvas(kWidth, kPanelHeight * static_cast<int>(panels.size()), Colour{255, 255, 255});
    for (size_t i = 0; i < panels.size(); ++i)
      draw_panel(canvas, static_cast<int>(i) * kPanelHeight, kPanelHeight, panels[i]);
    const std::string path = out->empty() ? *run_dir + "/curves.png" : *out;
    canvas.save_png(path);
    std::cout << path << "\n";
  });
}

}  // namespace dpunet::app
