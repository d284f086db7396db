// Figure writer: CSV + gnuplot script + PNG/SVG (see plot.hpp).
#include "support/plot.hpp"

#include "support/io.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace emergent::cli {
namespace {

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string gp_string(const std::string& s) {  // gnuplot double-quoted string
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string number(double v) {
  if (!std::isfinite(v)) return "nan";
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}

bool plottable(const Panel& p, double x, double y) {
  if (!std::isfinite(x) || !std::isfinite(y)) return false;
  if (p.logx && x <= 0) return false;
  if (p.logy && y <= 0) return false;
  return true;
}

std::string script_body(const Figure& f) {
  std::ostringstream gp;
  const int panels = static_cast<int>(f.panels.size());
  const int cols = f.columns > 0 ? std::min(f.columns, panels) : panels;
  const int rows = (panels + cols - 1) / cols;
  // Data blocks: one per series.
  for (int p = 0; p < panels; ++p)
    for (std::size_t s = 0; s < f.panels[p].series.size(); ++s) {
      const Series& se = f.panels[p].series[s];
      gp << "$p" << p << "s" << s << " << EOD\n";
      for (std::size_t i = 0; i < se.x.size() && i < se.y.size(); ++i) {
        if (!plottable(f.panels[p], se.x[i], se.y[i])) continue;
        const double e = i < se.error.size() && std::isfinite(se.error[i]) ? se.error[i] : 0.0;
        double lo = se.y[i] - e;
        if (f.panels[p].logy && lo <= 0) lo = se.y[i] * 1e-3;
        gp << number(se.x[i]) << " " << number(se.y[i]) << " " << number(lo) << " " << number(se.y[i] + e) << "\n";
      }
      gp << "EOD\n";
    }
  gp << "set multiplot layout " << rows << "," << cols;
  if (!f.title.empty()) gp << " title " << gp_string(f.title) << " font \",14\"";
  gp << "\nset grid lc rgb '#dddddd'\nset key outside right top font \",8\" box lc rgb '#cccccc'\n";
  for (int p = 0; p < panels; ++p) {
    const Panel& pa = f.panels[p];
    gp << "set title " << gp_string(pa.title) << "\nset xlabel " << gp_string(pa.xlabel) << "\nset ylabel "
       << gp_string(pa.ylabel) << "\n";
    gp << (pa.logx ? "set logscale x\nset format x \"10^{%L}\"\n" : "unset logscale x\nset format x \"% g\"\n");
    gp << (pa.logy ? "set logscale y\nset format y \"10^{%L}\"\n" : "unset logscale y\nset format y \"% g\"\n");
    std::vector<std::string> items;
    for (std::size_t s = 0; s < pa.series.size(); ++s) {
      const Series& se = pa.series[s];
      const std::string color = se.color.empty() ? kPalette[s % 8] : se.color;
      const std::string block = "$p" + std::to_string(p) + "s" + std::to_string(s);
      if (!se.error.empty())
        items.push_back(block + " using 1:3:4 with filledcurves fc rgb '" + color +
                        "' fs transparent solid 0.2 noborder notitle");
      items.push_back(block + " using 1:2 with " + (se.points ? "linespoints pt 7 ps 0.6" : "lines") + " lw 2 lc rgb '" +
                      color + "'" + (se.dashed ? " dt 2" : "") + " title " + gp_string(se.title));
    }
    if (items.empty()) {
      gp << "set label 1 'no data' at graph 0.5,0.5 center\nplot NaN notitle\nunset label 1\n";
      continue;
    }
    gp << "plot ";
    for (std::size_t i = 0; i < items.size(); ++i) gp << (i ? ", \\\n     " : "") << items[i];
    gp << "\n";
  }
  gp << "unset multiplot\n";
  return gp.str();
}

}  // namespace

bool gnuplot_available() {
  static const bool available = std::system("command -v gnuplot > /dev/null 2>&1") == 0;
  return available;
}

FigureFiles write_figure(const Figure& f, const std::string& stem) {
  // Every file is staged (support/io.hpp): it appears under its name only when the whole
  // command succeeds, so a failure half-way leaves no CSV or PNG that looks complete.
  FigureFiles files{stem + ".csv", stem + ".gp", stem + ".png", stem + ".svg", false, ""};
  {
    std::ofstream csv = open_staged(files.csv);
    csv << "panel,series,x,y,error\n";
    for (const Panel& p : f.panels)
      for (const Series& s : p.series)
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
          csv << '"' << p.title << "\",\"" << s.title << "\"," << number(s.x[i]) << "," << number(s.y[i]) << ","
              << (i < s.error.size() ? number(s.error[i]) : "") << "\n";
    if (!csv) throw std::runtime_error("cannot write " + files.csv);
  }
  const int panels = static_cast<int>(f.panels.size());
  const int cols = f.columns > 0 ? std::min(f.columns, std::max(panels, 1)) : std::max(panels, 1);
  const int rows = (std::max(panels, 1) + cols - 1) / cols;
  const int width = cols * f.panel_width, height = rows * f.panel_height + (f.title.empty() ? 0 : 40);
  const std::string script = stage_output(files.script);
  {
    // The output names are variables, so the render below can write to staged temporaries
    // while the script a user re-runs writes the final names.
    std::ofstream gp(script);
    if (!gp) throw std::runtime_error("cannot write " + files.script);
    gp << "# Render with: gnuplot " << files.script << "   (or gnuplot -e \"fmt='svg'\" " << files.script << ")\n"
       << "if (!exists(\"fmt\")) fmt = 'png'\n"
       << "if (!exists(\"png_file\")) png_file = " << gp_string(files.png) << "\n"
       << "if (!exists(\"svg_file\")) svg_file = " << gp_string(files.svg) << "\n"
       << "if (fmt eq 'svg') { set terminal svg size " << width << "," << height
       << " dynamic enhanced font 'Helvetica,11'; set output svg_file } "
       << "else { set terminal pngcairo size " << width << "," << height << " enhanced font 'Sans,10'; set output "
       << "png_file }\n"
       << script_body(f);
    if (!gp) throw std::runtime_error("cannot write " + files.script);
  }
  if (!gnuplot_available()) {
    files.message = "gnuplot not found (apt-get install gnuplot-nox): wrote " + files.csv + " only";
    return files;
  }
  const std::string png = stage_output(files.png), svg = stage_output(files.svg);
  const std::string log = stem + ".gnuplot.log";
  const int a = std::system(("gnuplot -e " + shell_quote("png_file=" + gp_string(png)) + " " + shell_quote(script) +
                             " > " + shell_quote(log) + " 2>&1").c_str());
  const int b = std::system(("gnuplot -e " + shell_quote("fmt='svg'; svg_file=" + gp_string(svg)) + " " +
                             shell_quote(script) + " >> " + shell_quote(log) + " 2>&1").c_str());
  if (a == 0 && b == 0) {
    std::remove(log.c_str());
    files.rendered = true;
  } else {
    unstage_output(png);
    unstage_output(svg);
    files.message = "gnuplot failed (see " + log + "): wrote " + files.csv + " only";
  }
  return files;
}

}  // namespace emergent::cli
