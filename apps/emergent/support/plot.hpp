// Figures of `emergent demo` and `emergent experiment`: every figure is written as a CSV (the
// numbers, always), a gnuplot script, and, if gnuplot is installed, a PNG (pngcairo) and an SVG.
#pragma once

#include <string>
#include <vector>

namespace emergent::cli {

/// One curve. With `error` non-empty (same length as y) it is drawn as a shaded band y ± error
/// under its line.
struct Series {
  std::string title;
  std::vector<double> x, y, error;
  std::string color;     ///< gnuplot color, e.g. "#1f77b4" ("" : automatic)
  bool dashed = false;
  bool points = false;   ///< markers on the line
};

/// One panel (axes) of a figure.
struct Panel {
  std::string title, xlabel, ylabel;
  bool logx = false, logy = false;
  std::vector<Series> series;
};

struct Figure {
  std::string title;
  std::vector<Panel> panels;
  int columns = 0;       ///< panels per row (0: all in one row)
  int panel_width = 700, panel_height = 400;  ///< pixels of one panel in the PNG
};

struct FigureFiles {
  std::string csv, script, png, svg;
  bool rendered = false;  ///< PNG and SVG written
  std::string message;    ///< why not, if not
};

/// True if `gnuplot` is on PATH.
bool gnuplot_available();

/// Write <stem>.csv (columns panel,series,x,y,error) and <stem>.gp, then render <stem>.png and
/// <stem>.svg with gnuplot if it is available. Non-finite values are written as "nan" in the CSV
/// and skipped in the plot. Throws std::runtime_error if the CSV cannot be written.
FigureFiles write_figure(const Figure& figure, const std::string& stem);

}  // namespace emergent::cli

// ---- The Ising study shared by `emergent demo` and `emergent experiment ising` ------------------
// (defined in cmd_experiment.cpp; figure-oriented, so it lives with the figure helper.)
#include <cstdint>
#include <iosfwd>

#include <emergent/core/inputs.hpp>

namespace emergent::cli {

/// Finite-width CNN ensembles trained with C4 augmentation on Ising energies, against the NTK
/// gradient flow of the same architecture (Gerken & Kessel 2024, Figures 1 and 5).
struct IsingStudyOptions {
  int size = 6;                                     ///< lattice L
  std::vector<double> train_temperatures = {1.8, 2.269, 2.8};
  int train_per_temperature = 8;                    ///< configurations per temperature (before ×4 augmentation)
  int test_per_temperature = 4;                     ///< held-out configurations at the training temperatures
  std::vector<double> ood_temperatures = {1.2, 4.5};
  int ood_per_temperature = 4;
  int noise_inputs = 8;                             ///< off-manifold inputs with N(0,1) entries
  std::vector<int> widths = {128};                  ///< conv channels of the finite members
  int members = 8;                                  ///< M_max trained per width (smaller M: disjoint groups)
  std::vector<int> ensemble_sizes = {1, 8};         ///< M shown (each must divide members)
  std::vector<int> checkpoints = {0, 3, 10, 30, 100, 300};  ///< GD steps, last = total
  double learning_rate = 1.0;
  std::uint64_t seed = 2024;
  /// Architecture with {W} standing for the width.
  std::string arch = "conv({W}, 3x3, padding=circular, b=0.1) relu flatten dense(1, b=0.1)";
};

/// Orbit deviation d(x) = sqrt((1/|G|)Σ_g (f(gx) − mean_g f(gx))²), RMS over the points of a
/// subset, per checkpoint (0 for an exactly invariant predictor).
struct IsingStudyWidth {
  int width = 0;
  double seconds = 0;
  // [subset][checkpoint]
  std::vector<std::vector<double>> member_mean, member_std;            ///< over members
  std::vector<std::vector<std::vector<double>>> ensemble;              ///< [M index][subset][checkpoint], mean over disjoint groups
  std::vector<std::vector<std::vector<double>>> ntk_difference;        ///< [M][subset][checkpoint]: RMS(f̂_M − μ_t)/RMS(μ_t)
  std::vector<double> final_train_loss;                                ///< [member] loss at the last checkpoint
};

struct IsingStudy {
  IsingStudyOptions options;
  std::vector<std::string> subsets;                                    ///< "train", "test", "OOD T", "noise"
  std::vector<double> times;                                           ///< = checkpoints
  std::vector<IsingStudyWidth> widths;
  std::vector<std::vector<std::vector<double>>> ntk_orbit;             ///< [M][subset][checkpoint]: NTK-limit prediction of the RMS orbit deviation
  std::vector<std::vector<std::vector<double>>> ntk_floor;             ///< [M][subset][checkpoint]: sqrt(mean Σ_t(x,x)/M)/RMS(μ_t)
  std::vector<double> ntk_test_rmse;                                   ///< [subset] RMS(μ_last − E) / RMS(E)
  double kernel_seconds = 0, seconds = 0;
  // Data (kept for the demo's extra checks)
  Inputs train_x, eval_x;   ///< originals (not augmented); eval rows grouped by subset
  RowMatrix train_y, eval_y;
  std::vector<int> subset_of;  ///< per eval row
};

/// Run the study; progress lines go to `log`. Throws std::invalid_argument for bad options.
IsingStudy run_ising_study(const IsingStudyOptions& options, std::ostream& log);

/// Figure 1 (orbit deviation vs training time) and Figure 5 (ensemble − NTK) of a study.
FigureFiles ising_figure1(const IsingStudy& study, const std::string& stem, const std::vector<int>& subsets);
FigureFiles ising_figure5(const IsingStudy& study, const std::string& stem);

}  // namespace emergent::cli
