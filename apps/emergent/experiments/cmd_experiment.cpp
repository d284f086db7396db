// `emergent experiment`: the paper's experiments. `experiment ising` reproduces Figures 1 and 5 of
// Gerken & Kessel (ICML 2024) on 2-D Ising energies: finite-width CNN ensembles trained with C4
// augmentation become invariant as an ensemble (not as members), and approach the NTK gradient
// flow (docs/conventions.md §3) as the ensemble size M and the width grow. Also home of run_ising_study,
// which `emergent demo` reuses at a smaller scale.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <emergent/networks/ensemble.hpp>
#include <emergent/dynamics/gradient_flow.hpp>
#include <emergent/symmetry/augmentation.hpp>
#include <emergent/symmetry/groups.hpp>
#include <emergent/symmetry/representation.hpp>
#include <emergent/theorems/equivariance_checks.hpp>
#include <emergent/theorems/member_violation.hpp>
#include <emergent/data/ising.hpp>
#include <emergent/kernels/kernel.hpp>
#include <emergent/core/random.hpp>

#include "commands.hpp"
#include "support/plot.hpp"

namespace emergent::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string with_width(std::string spec, int width) {
  const auto pos = spec.find("{W}");
  if (pos != std::string::npos) spec.replace(pos, 3, std::to_string(width));
  return spec;
}

// d(x)² = (1/|G|)Σ_g (f_g − mean)², f_g = values[g·n + i].
double orbit_d2(const std::vector<double>& f, Eigen::Index n, int G, Eigen::Index i) {
  double mean = 0;
  for (int g = 0; g < G; ++g) mean += f[g * n + i];
  mean /= G;
  double s = 0;
  for (int g = 0; g < G; ++g) s += (f[g * n + i] - mean) * (f[g * n + i] - mean);
  return s / G;
}

void check_options(const IsingStudyOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (o.size < 2) bad("--size = " + std::to_string(o.size) + ": expected L ≥ 2");
  if (o.train_temperatures.empty() || o.train_per_temperature < 1) bad("training set is empty: expected temperatures and ≥ 1 sample each");
  if (o.widths.empty()) bad("--widths is empty: expected at least one width");
  for (int w : o.widths)
    if (w < 1) bad("--widths contains " + std::to_string(w) + ": expected widths ≥ 1");
  if (o.members < 1) bad("--members = " + std::to_string(o.members) + ": expected ≥ 1");
  for (int m : o.ensemble_sizes)
    if (m < 1 || o.members % m != 0)
      bad("ensemble size " + std::to_string(m) + ": expected a divisor of members = " + std::to_string(o.members));
  if (o.checkpoints.empty() || o.checkpoints.front() < 0 || !std::is_sorted(o.checkpoints.begin(), o.checkpoints.end()))
    bad("checkpoints: expected increasing steps ≥ 0");
  if (!(o.learning_rate > 0)) bad("learning rate = " + std::to_string(o.learning_rate) + ": expected > 0");
}

}  // namespace

IsingStudy run_ising_study(const IsingStudyOptions& o, std::ostream& log) {
  check_options(o);
  const auto t0 = std::chrono::steady_clock::now();
  IsingStudy st;
  st.options = o;
  st.subsets = {"train", "test", "OOD temperatures", "Gaussian noise"};
  st.times.assign(o.checkpoints.begin(), o.checkpoints.end());
  const int L = o.size;
  const ExampleShape shape = ExampleShape::image_hwc(L, L, 1);

  // ---- data ----
  IsingOptions io;
  io.size = L;
  io.temperatures = o.train_temperatures;
  io.samples_per_temperature = o.train_per_temperature + o.test_per_temperature;
  io.seed = o.seed;
  const IsingDataset d = sample_ising(io);
  std::vector<Eigen::Index> train_rows, test_rows;
  for (std::size_t j = 0; j < o.train_temperatures.size(); ++j)
    for (int k = 0; k < io.samples_per_temperature; ++k)
      (k < o.train_per_temperature ? train_rows : test_rows).push_back(static_cast<Eigen::Index>(j) * io.samples_per_temperature + k);
  st.train_x = d.x.rows(train_rows);
  st.train_y = ising_energies(st.train_x);
  std::vector<RowMatrix> parts;
  std::vector<int> subset_of;
  auto add = [&](const RowMatrix& rows, int subset) {
    parts.push_back(rows);
    for (Eigen::Index i = 0; i < rows.rows(); ++i) subset_of.push_back(subset);
  };
  add(st.train_x.x, 0);
  if (!test_rows.empty()) add(d.x.rows(test_rows).x, 1);
  if (!o.ood_temperatures.empty() && o.ood_per_temperature > 0) {
    IsingOptions oo = io;
    oo.temperatures = o.ood_temperatures;
    oo.samples_per_temperature = o.ood_per_temperature;
    oo.seed = o.seed + 1;
    add(sample_ising(oo).x.x, 2);
  }
  if (o.noise_inputs > 0) {
    NormalStream rng(o.seed, 0x5EED);
    RowMatrix z(o.noise_inputs, L * L);
    for (Eigen::Index i = 0; i < z.size(); ++i) z.data()[i] = rng.normal(i);
    add(z, 3);
  }
  Eigen::Index n_eval = 0;
  for (const auto& p : parts) n_eval += p.rows();
  RowMatrix ex(n_eval, L * L);
  Eigen::Index r = 0;
  for (const auto& p : parts) {
    ex.middleRows(r, p.rows()) = p;
    r += p.rows();
  }
  st.eval_x = Inputs(std::move(ex), shape);
  st.eval_y = ising_energies(st.eval_x);
  st.subset_of = subset_of;

  const Representation c4 = make_group("c4", shape);
  const int G = c4.size();
  const AugmentedSet aug = augment(st.train_x, st.train_y, c4, trivial_output(c4, 1));
  const Inputs eval_orbit = orbit_of(st.eval_x, c4);
  log << "data: " << st.train_x.count() << " training configurations (" << aug.x.count() << " after C4 augmentation), "
      << n_eval << " evaluation inputs x 4 rotations, L = " << L << "\n";

  // ---- NTK limit ----
  const auto tk = std::chrono::steady_clock::now();
  const Architecture arch_k = Architecture::parse(with_width(o.arch, 1));
  const Kernels ktt = kernels(arch_k, aug.x);
  const Kernels ket = kernels(arch_k, eval_orbit, aug.x);
  const Kernels kee = kernels(arch_k, eval_orbit);
  GradientFlowOptions gfo;
  gfo.learning_rate = o.learning_rate;
  const GradientFlow flow(ktt.ntk, ktt.nngp, aug.y.cast<double>(), gfo);
  const auto mu = flow.mean(st.times, ket.ntk);
  const auto cov = flow.covariance(st.times, ket.ntk, ket.nngp, kee.nngp);
  st.kernel_seconds = seconds_since(tk);
  log << "NTK: kernels and gradient flow in " << std::fixed << std::setprecision(1) << st.kernel_seconds << " s ("
      << flow.summary().to_string() << ")\n";

  const int S = static_cast<int>(st.subsets.size());
  const int T = static_cast<int>(st.times.size());
  const int nM = static_cast<int>(o.ensemble_sizes.size());
  std::vector<int> count(S, 0);
  for (int s : subset_of) ++count[s];
  auto per = [&](double init) { return std::vector<std::vector<double>>(S, std::vector<double>(T, init)); };
  st.ntk_orbit.assign(nM, per(0));
  st.ntk_floor.assign(nM, per(0));
  std::vector<std::vector<double>> mu_rms = per(0);
  for (int t = 0; t < T; ++t)
    for (Eigen::Index i = 0; i < n_eval; ++i) {
      const int s = subset_of[i];
      double tr = 0, sum = 0;
      for (int a = 0; a < G; ++a)
        for (int b = 0; b < G; ++b) {
          const double c = cov[t](a * n_eval + i, b * n_eval + i);
          sum += c;
          if (a == b) tr += c;
        }
      const double d2 = (tr - sum / G) / G;  // E d(x)² for one member
      for (int m = 0; m < nM; ++m) {
        st.ntk_orbit[m][s][t] += d2 / o.ensemble_sizes[m];
        st.ntk_floor[m][s][t] += cov[t](i, i) / o.ensemble_sizes[m];
      }
      mu_rms[s][t] += mu[t](i, 0) * mu[t](i, 0);
    }
  st.ntk_test_rmse.assign(S, 0);
  std::vector<double> e_rms(S, 0);
  for (Eigen::Index i = 0; i < n_eval; ++i) {
    const double diff = mu[T - 1](i, 0) - st.eval_y(i, 0);
    st.ntk_test_rmse[subset_of[i]] += diff * diff;
    e_rms[subset_of[i]] += st.eval_y(i, 0) * st.eval_y(i, 0);
  }
  for (int s = 0; s < S; ++s) {
    if (count[s] == 0) continue;
    st.ntk_test_rmse[s] = std::sqrt(st.ntk_test_rmse[s] / e_rms[s]);
    for (int t = 0; t < T; ++t) {
      mu_rms[s][t] = std::sqrt(mu_rms[s][t] / count[s]);
      for (int m = 0; m < nM; ++m) {
        st.ntk_orbit[m][s][t] = std::sqrt(st.ntk_orbit[m][s][t] / count[s]);
        st.ntk_floor[m][s][t] = mu_rms[s][t] > 0 ? std::sqrt(st.ntk_floor[m][s][t] / count[s]) / mu_rms[s][t] : NAN;
      }
    }
  }

  // ---- finite-width ensembles ----
  for (int width : o.widths) {
    const auto tw = std::chrono::steady_clock::now();
    IsingStudyWidth w;
    w.width = width;
    TrainingOptions to;
    to.members = o.members;
    to.steps = o.checkpoints.back();
    to.learning_rate = o.learning_rate;
    to.seed = o.seed + static_cast<std::uint64_t>(width);
    to.checkpoints = o.checkpoints;
    const EnsembleResult er =
        train_ensemble(Architecture::parse(with_width(o.arch, width)), aug.x, aug.y, eval_orbit, to);
    const Eigen::Index n_orbit = eval_orbit.count();
    auto values = [&](int member, int t) {
      std::vector<double> v(n_orbit);
      for (Eigen::Index q = 0; q < n_orbit; ++q) v[q] = er.at(member, t, q, 0);
      return v;
    };
    w.member_mean = per(0);
    w.member_std = per(0);
    w.ensemble.assign(nM, per(0));
    w.ntk_difference.assign(nM, per(0));
    for (int t = 0; t < T; ++t) {
      std::vector<std::vector<double>> member_rms(S, std::vector<double>(o.members, 0));
      std::vector<std::vector<double>> fs(o.members);
      for (int m = 0; m < o.members; ++m) {
        fs[m] = values(m, t);
        for (Eigen::Index i = 0; i < n_eval; ++i) member_rms[subset_of[i]][m] += orbit_d2(fs[m], n_eval, G, i);
      }
      for (int s = 0; s < S; ++s) {
        if (count[s] == 0) continue;
        double a = 0, a2 = 0;
        for (int m = 0; m < o.members; ++m) {
          const double v = std::sqrt(member_rms[s][m] / count[s]);
          a += v;
          a2 += v * v;
        }
        w.member_mean[s][t] = a / o.members;
        w.member_std[s][t] = o.members > 1 ? std::sqrt(std::max(0.0, (a2 - a * a / o.members) / (o.members - 1))) : 0;
      }
      for (int mi = 0; mi < nM; ++mi) {
        const int M = o.ensemble_sizes[mi], groups = o.members / M;
        for (int gr = 0; gr < groups; ++gr) {
          std::vector<double> mean(n_orbit, 0.0);
          for (int m = gr * M; m < (gr + 1) * M; ++m)
            for (Eigen::Index q = 0; q < n_orbit; ++q) mean[q] += fs[m][q] / M;
          std::vector<double> d2(S, 0), diff2(S, 0);
          for (Eigen::Index i = 0; i < n_eval; ++i) {
            d2[subset_of[i]] += orbit_d2(mean, n_eval, G, i);
            const double df = mean[i] - mu[t](i, 0);
            diff2[subset_of[i]] += df * df;
          }
          for (int s = 0; s < S; ++s) {
            if (count[s] == 0) continue;
            w.ensemble[mi][s][t] += std::sqrt(d2[s] / count[s]) / groups;
            w.ntk_difference[mi][s][t] += (mu_rms[s][t] > 0 ? std::sqrt(diff2[s] / count[s]) / mu_rms[s][t] : NAN) / groups;
          }
        }
      }
    }
    for (int m = 0; m < o.members; ++m) w.final_train_loss.push_back(er.train_loss[static_cast<std::size_t>(m) * T + T - 1]);
    w.seconds = seconds_since(tw);
    log << "width " << width << ": " << o.members << " members x " << to.steps << " steps in " << std::fixed
        << std::setprecision(1) << w.seconds << " s" << std::endl;
    st.widths.push_back(std::move(w));
  }
  st.seconds = seconds_since(t0);
  return st;
}

namespace {
const char* kMColors[] = {"#2ca02c", "#1f77b4", "#9467bd", "#17becf", "#8c564b"};
}

FigureFiles ising_figure1(const IsingStudy& st, const std::string& stem, const std::vector<int>& subsets) {
  Figure f;
  f.title = "Invariance under 90° rotations, C4-augmented training";
  f.columns = st.widths.size() > 1 ? static_cast<int>(st.widths.size()) : static_cast<int>(subsets.size());
  std::vector<double> x(st.times);
  for (double& v : x) v = std::max(v, 0.5);  // t = 0 drawn at 0.5 on the log axis
  for (int s : subsets)
    for (const auto& w : st.widths) {
      Panel p;
      p.title = st.subsets[s] + ", width " + std::to_string(w.width);
      p.xlabel = "training time t (GD steps; t=0 drawn at 0.5)";
      p.ylabel = "RMS orbit deviation of prediction";
      p.logx = p.logy = true;
      p.series.push_back({"members (mean ± std)", x, w.member_mean[s], w.member_std[s], "#d62728", false, true});
      for (std::size_t mi = 0; mi < st.options.ensemble_sizes.size(); ++mi) {
        const int M = st.options.ensemble_sizes[mi];
        if (M == 1) continue;
        const std::string c = kMColors[mi % 5];
        p.series.push_back({"ensemble mean, M=" + std::to_string(M), x, w.ensemble[mi][s], {}, c, false, true});
        p.series.push_back({"NTK limit, M=" + std::to_string(M), x, st.ntk_orbit[mi][s], {}, c, true, false});
      }
      // M = 1 NTK prediction: what one infinitely wide member would show.
      for (std::size_t mi = 0; mi < st.options.ensemble_sizes.size(); ++mi)
        if (st.options.ensemble_sizes[mi] == 1)
          p.series.push_back({"NTK limit, one member", x, st.ntk_orbit[mi][s], {}, "#d62728", true, false});
      f.panels.push_back(std::move(p));
    }
  return write_figure(f, stem);
}

FigureFiles ising_figure5(const IsingStudy& st, const std::string& stem) {
  Figure f;
  f.title = "Ensemble vs NTK: RMS(ensemble mean − μ_t) / RMS(μ_t) at t = " + std::to_string(static_cast<long>(st.times.back()));
  f.columns = 2;
  const int T = static_cast<int>(st.times.size());
  for (std::size_t s = 0; s < st.subsets.size(); ++s) {
    Panel p;
    p.title = st.subsets[s];
    p.xlabel = "width (conv channels)";
    p.ylabel = "relative difference of predicted energy";
    p.logx = p.logy = true;
    for (std::size_t mi = 0; mi < st.options.ensemble_sizes.size(); ++mi) {
      const int M = st.options.ensemble_sizes[mi];
      Series se{"ensemble, M=" + std::to_string(M), {}, {}, {}, kMColors[mi % 5], false, true};
      Series fl{"NTK floor sqrt(Var/M), M=" + std::to_string(M), {}, {}, {}, kMColors[mi % 5], true, false};
      for (const auto& w : st.widths) {
        se.x.push_back(w.width);
        se.y.push_back(w.ntk_difference[mi][s][T - 1]);
        fl.x.push_back(w.width);
        fl.y.push_back(st.ntk_floor[mi][s][T - 1]);
      }
      p.series.push_back(se);
      p.series.push_back(fl);
    }
    f.panels.push_back(std::move(p));
  }
  return write_figure(f, stem);
}

namespace {

void print_figure(std::ostream& os, const FigureFiles& ff) {
  if (ff.rendered)
    os << "  figure: " << ff.png << " (also " << ff.svg << ", data " << ff.csv << ")\n";
  else
    os << "  " << ff.message << "\n";
}

void run_experiment_ising(double scale, const std::string& out, const std::string& widths_text, std::uint64_t seed) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw std::invalid_argument("--scale = " + std::to_string(scale) + ": expected a finite number > 0");
  IsingStudyOptions o;
  o.seed = seed;
  o.size = 6;
  o.train_temperatures = {1.8, kIsingCriticalTemperature, 2.8};
  o.train_per_temperature = std::max(2, static_cast<int>(std::lround(8 * std::sqrt(scale))));
  o.test_per_temperature = std::max(2, static_cast<int>(std::lround(6 * std::sqrt(scale))));
  o.ood_temperatures = {1.2, 4.5};
  o.ood_per_temperature = 6;
  o.noise_inputs = 12;
  o.widths = {32, 128, 512};
  if (!widths_text.empty()) {
    o.widths.clear();
    std::stringstream ss(widths_text);
    std::string item;
    while (std::getline(ss, item, ','))
    {
      std::size_t used = 0;
      int value = 0;
      try {
        value = std::stoi(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != item.size())
        throw std::invalid_argument("--widths: '" + item + "' is not an integer (expected e.g. 32,128,512)");
      o.widths.push_back(value);
    }
  }
  // Scale 1 (8 members per width, 300 steps) takes ~1.5 CPU-minutes, about 5 minutes of wall time
  // on a heavily shared 2-core machine; scale ≥ 2 also trains to t = 1000.
  const int groups = std::max(1, static_cast<int>(std::lround(scale * 2)));
  o.members = 4 * groups;  // M = 1, 4 and (if different) all members
  o.ensemble_sizes = {1, 4};
  if (o.members > 4) o.ensemble_sizes.push_back(o.members);
  o.checkpoints = {0, 3, 10, 30, 100, 300};
  if (scale >= 2) o.checkpoints.push_back(1000);
  std::filesystem::create_directories(out);
  std::cout << "emergent experiment ising: Figures 1 and 5 of Gerken & Kessel (2024) at scale " << scale << "\n";
  const IsingStudy st = run_ising_study(o, std::cout);
  const FigureFiles f1 = ising_figure1(st, out + "/figure1_ising_invariance", {1, 2, 3});
  const FigureFiles f5 = ising_figure5(st, out + "/figure5_ising_ntk_difference");
  const int T = static_cast<int>(st.times.size());
  std::cout << std::scientific << std::setprecision(2);
  std::cout << "\nNTK mean at t = " << st.times.back() << ": relative RMS error of the energy: train "
            << st.ntk_test_rmse[0] << ", test " << st.ntk_test_rmse[1] << ", OOD T " << st.ntk_test_rmse[2]
            << ", noise " << st.ntk_test_rmse[3] << "\n";
  std::cout << "\nRMS orbit deviation at t = " << st.times.back() << " (members | ensembles | NTK prediction):\n";
  for (const auto& w : st.widths)
    for (int s = 1; s < 4; ++s) {
      std::cout << "  width " << std::setw(5) << w.width << "  " << std::left << std::setw(18) << st.subsets[s] << std::right
                << " members " << w.member_mean[s][T - 1];
      for (std::size_t mi = 0; mi < o.ensemble_sizes.size(); ++mi)
        if (o.ensemble_sizes[mi] > 1)
          std::cout << " | M=" << o.ensemble_sizes[mi] << " " << w.ensemble[mi][s][T - 1] << " (NTK "
                    << st.ntk_orbit[mi][s][T - 1] << ")";
      std::cout << "\n";
    }
  std::cout << "\nRelative difference ensemble - NTK at t = " << st.times.back() << " (M = " << o.members << "):\n";
  for (const auto& w : st.widths) {
    std::cout << "  width " << std::setw(5) << w.width;
    for (int s = 0; s < 4; ++s) std::cout << "  " << st.subsets[s] << " " << w.ntk_difference.back()[s][T - 1];
    std::cout << "\n";
  }
  std::cout << "\n";
  print_figure(std::cout, f1);
  print_figure(std::cout, f5);
  std::cout << std::fixed << std::setprecision(1) << "done in " << st.seconds << " s\n";
}

}  // namespace

void add_experiment_command(CLI::App& app) {
  auto* experiment = app.add_subcommand("experiment", "The paper's experiments (figures as PNG + SVG + CSV)");
  experiment->require_subcommand(1);

  auto* ising = experiment->add_subcommand("ising", "Ising energies: Figures 1 and 5 (invariance vs training time; ensemble vs NTK)");
  auto scale = std::make_shared<double>(1.0);
  auto out = std::make_shared<std::string>("emergent-experiment-ising");
  auto widths = std::make_shared<std::string>();
  auto seed = std::make_shared<std::uint64_t>(2024);
  ising->add_option("--scale", *scale, "Members and data relative to the default (1: 8 members per width, 300 steps; >= 2 also t = 1000)");
  ising->add_option("--out", *out, "Output directory for figures and CSV")->capture_default_str();
  ising->add_option("--widths", *widths, "Comma-separated conv widths (default 32,128,512)");
  ising->add_option("--seed", *seed, "Seed of data and initializations")->capture_default_str();
  ising->callback([=] { run_experiment_ising(*scale, *out, *widths, *seed); });

  // ---- further experiments register here -------------------------------------------------
  // Each further experiment adds itself to `experiment` here (declared in commands.hpp).
  add_fashion_mnist_experiment(experiment);  // cmd_fashion_mnist.cpp
  add_cross_product_experiment(experiment);  // cmd_cross_product.cpp
}

}  // namespace emergent::cli
