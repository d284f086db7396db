// Closed-form gradient flow, the NNGP posterior and finite-width ensembles (emergent/dynamics,
// emergent/networks).
#include <nanobind/eigen/dense.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "common.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/networks/ensemble.hpp"

namespace emergent::python {

namespace {

// Python owns a shared_ptr, so a computation abandoned on Ctrl-C keeps the flow alive.
struct PyGradientFlow {
  std::shared_ptr<const GradientFlow> flow;
};
struct PyNngpPosterior {
  std::shared_ptr<const NngpPosterior> posterior;
};

GradientFlowOptions flow_options(double learning_rate, double diag_reg, bool diag_reg_relative, double rank_rtol,
                                 double psd_rtol, double ill_conditioned, double symmetry_rtol, int threads) {
  GradientFlowOptions o;
  o.learning_rate = learning_rate;
  o.diag_reg = diag_reg;
  o.diag_reg_relative = diag_reg_relative;
  o.rank_rtol = rank_rtol;
  o.psd_rtol = psd_rtol;
  o.ill_conditioned = ill_conditioned;
  o.symmetry_rtol = symmetry_rtol;
  o.threads = threads;
  return o;  // GradientFlow validates it (IsValid) and throws std::invalid_argument
}

OutArray stacked(const std::vector<Eigen::MatrixXd>& per_time) {
  const std::size_t rows = per_time.empty() ? 0 : per_time[0].rows();
  const std::size_t cols = per_time.empty() ? 0 : per_time[0].cols();
  return to_numpy(stack(per_time), {per_time.size(), rows, cols});
}

#define EMERGENT_FLOW_OPTION_ARGS                                                                          \
  nb::arg("learning_rate") = 1.0, nb::arg("diag_reg") = 0.0, nb::arg("diag_reg_relative") = false,        \
      nb::arg("rank_rtol") = 0.0, nb::arg("psd_rtol") = 1e-8, nb::arg("ill_conditioned") = 1e10,         \
      nb::arg("symmetry_rtol") = 1e-10, nb::arg("threads") = 0

}  // namespace

GradientFlowOptions make_flow_options(double learning_rate, double diag_reg, bool diag_reg_relative,
                                      double rank_rtol, double psd_rtol, double ill_conditioned,
                                      double symmetry_rtol, int threads) {
  return flow_options(learning_rate, diag_reg, diag_reg_relative, rank_rtol, psd_rtol, ill_conditioned,
                      symmetry_rtol, threads);
}

void bind_dynamics(nb::module_& m) {
  nb::class_<PyGradientFlow>(m, "GradientFlow")
      .def("__init__",
           [](PyGradientFlow* self, const InArray& ntk_train_train, const InArray& y_train,
              std::optional<InArray> nngp_train_train, double learning_rate, double diag_reg,
              bool diag_reg_relative, double rank_rtol, double psd_rtol, double ill_conditioned,
              double symmetry_rtol, int threads) {
             Eigen::MatrixXd ntk = to_matrix(ntk_train_train, "ntk_train_train");
             Eigen::MatrixXd y = to_matrix(y_train, "y_train");
             Eigen::MatrixXd nngp = nngp_train_train ? to_matrix(*nngp_train_train, "nngp_train_train")
                                                     : Eigen::MatrixXd();
             const GradientFlowOptions o = flow_options(learning_rate, diag_reg, diag_reg_relative, rank_rtol,
                                                        psd_rtol, ill_conditioned, symmetry_rtol, threads);
             auto flow = interruptible([ntk = std::move(ntk), nngp = std::move(nngp), y = std::move(y), o]() {
               return std::make_shared<const GradientFlow>(ntk, nngp, y, o);
             });
             new (self) PyGradientFlow{std::move(flow)};
           },
           nb::arg("ntk_train_train"), nb::arg("y_train"), nb::arg("nngp_train_train").none() = nb::none(),
           EMERGENT_FLOW_OPTION_ARGS)
      .def_prop_ro("summary", [](const PyGradientFlow& f) { return f.flow->summary(); })
      .def_prop_ro("covariance_factor", [](const PyGradientFlow& f) { return f.flow->covariance_factor(); })
      .def_prop_ro("train_size", [](const PyGradientFlow& f) { return f.flow->train_size(); })
      .def_prop_ro("outputs", [](const PyGradientFlow& f) { return f.flow->outputs(); })
      .def("mean",
           [](const PyGradientFlow& f, const std::vector<double>& times, const InArray& ntk_test_train) {
             auto flow = f.flow;
             Eigen::MatrixXd a = to_matrix(ntk_test_train, "ntk_test_train");
             return stacked(interruptible([flow, times, a = std::move(a)]() { return flow->mean(times, a); }));
           },
           nb::arg("times"), nb::arg("ntk_test_train"))
      .def("covariance",
           [](const PyGradientFlow& f, const std::vector<double>& times, const InArray& ntk_test_train,
              const InArray& nngp_test_train, const InArray& nngp_test_test) {
             auto flow = f.flow;
             Eigen::MatrixXd a = to_matrix(ntk_test_train, "ntk_test_train");
             Eigen::MatrixXd b = to_matrix(nngp_test_train, "nngp_test_train");
             Eigen::MatrixXd c = to_matrix(nngp_test_test, "nngp_test_test");
             return stacked(interruptible([flow, times, a = std::move(a), b = std::move(b), c = std::move(c)]() {
               return flow->covariance(times, a, b, c);
             }));
           },
           nb::arg("times"), nb::arg("ntk_test_train"), nb::arg("nngp_test_train"), nb::arg("nngp_test_test"))
      .def("train_mean", [](const PyGradientFlow& f, const std::vector<double>& times) {
             return stacked(f.flow->train_mean(times));
           }, nb::arg("times"))
      .def("train_loss", [](const PyGradientFlow& f, const std::vector<double>& times) {
             return f.flow->train_loss(times);
           }, nb::arg("times"))
      .def("evolve",
           [](const PyGradientFlow& f, const std::vector<double>& times, const InArray& ntk_test_train,
              const InArray& f0_train, const InArray& f0_test) {
             auto flow = f.flow;
             Eigen::MatrixXd a = to_matrix(ntk_test_train, "ntk_test_train");
             Eigen::MatrixXd b = to_matrix(f0_train, "f0_train");
             Eigen::MatrixXd c = to_matrix(f0_test, "f0_test");
             return stacked(interruptible([flow, times, a = std::move(a), b = std::move(b), c = std::move(c)]() {
               return flow->evolve(times, a, b, c);
             }));
           },
           nb::arg("times"), nb::arg("ntk_test_train"), nb::arg("f0_train"), nb::arg("f0_test"))
      .def("sample_members",
           [](const PyGradientFlow& f, const std::vector<double>& times, const InArray& ntk_test_train,
              const InArray& nngp_test_train, const InArray& nngp_test_test, Eigen::Index members,
              std::uint64_t seed) {
             auto flow = f.flow;
             Eigen::MatrixXd a = to_matrix(ntk_test_train, "ntk_test_train");
             Eigen::MatrixXd b = to_matrix(nngp_test_train, "nngp_test_train");
             Eigen::MatrixXd c = to_matrix(nngp_test_test, "nngp_test_test");
             LinearizedEnsemble e = interruptible(
                 [flow, times, a = std::move(a), b = std::move(b), c = std::move(c), members, seed]() {
                   return flow->sample_members(times, a, b, c, members, seed);
                 });
             const auto shape = e.shape();
             SpectralSummary prior = e.prior;
             return nb::make_tuple(to_numpy(std::move(e.values), shape), prior);
           },
           nb::arg("times"), nb::arg("ntk_test_train"), nb::arg("nngp_test_train"), nb::arg("nngp_test_test"),
           nb::arg("members"), nb::arg("seed"));

  nb::class_<PyNngpPosterior>(m, "NngpPosterior")
      .def("__init__",
           [](PyNngpPosterior* self, const InArray& nngp_train_train, const InArray& y_train, double diag_reg,
              bool diag_reg_relative, double rank_rtol, double psd_rtol, double ill_conditioned,
              double symmetry_rtol, int threads) {
             Eigen::MatrixXd k = to_matrix(nngp_train_train, "nngp_train_train");
             Eigen::MatrixXd y = to_matrix(y_train, "y_train");
             const GradientFlowOptions o = flow_options(1.0, diag_reg, diag_reg_relative, rank_rtol, psd_rtol,
                                                        ill_conditioned, symmetry_rtol, threads);
             auto p = interruptible([k = std::move(k), y = std::move(y), o]() {
               return std::make_shared<const NngpPosterior>(k, y, o);
             });
             new (self) PyNngpPosterior{std::move(p)};
           },
           nb::arg("nngp_train_train"), nb::arg("y_train"), nb::arg("diag_reg") = 0.0,
           nb::arg("diag_reg_relative") = false, nb::arg("rank_rtol") = 0.0, nb::arg("psd_rtol") = 1e-8,
           nb::arg("ill_conditioned") = 1e10, nb::arg("symmetry_rtol") = 1e-10, nb::arg("threads") = 0)
      .def_prop_ro("summary", [](const PyNngpPosterior& p) { return p.posterior->summary(); })
      .def("mean", [](const PyNngpPosterior& p, const InArray& nngp_test_train) {
             return to_numpy(p.posterior->mean(to_matrix(nngp_test_train, "nngp_test_train")));
           }, nb::arg("nngp_test_train"))
      .def("covariance", [](const PyNngpPosterior& p, const InArray& nngp_test_train, const InArray& nngp_test_test) {
             return to_numpy(p.posterior->covariance(to_matrix(nngp_test_train, "nngp_test_train"),
                                                     to_matrix(nngp_test_test, "nngp_test_test")));
           }, nb::arg("nngp_test_train"), nb::arg("nngp_test_test"));

  m.def("train_ensemble",
        [](const Architecture& arch, const InArray& train_x, const InArray& train_y, const InArray& test_x,
           int members, int steps, double learning_rate, std::uint64_t seed, std::vector<int> checkpoints,
           int batch_size, const std::string& loss, int threads) {
          TrainingOptions o;
          o.members = members;
          o.steps = steps;
          o.learning_rate = learning_rate;
          o.seed = seed;
          o.checkpoints = std::move(checkpoints);
          o.batch_size = batch_size;
          if (loss == "mse") o.loss = TrainingLoss::MeanSquaredError;
          else if (loss == "softmax_cross_entropy") o.loss = TrainingLoss::SoftmaxCrossEntropy;
          else throw std::invalid_argument("loss: '" + loss + "' is not a training loss; expected 'mse' or 'softmax_cross_entropy'");
          o.threads = threads;
          Inputs x = to_inputs(train_x, "train_x");
          RowMatrix y = to_row_matrix(train_y, "train_y");
          Inputs z = to_inputs(test_x, "test_x");
          EnsembleResult r = interruptible([arch, x = std::move(x), y = std::move(y), z = std::move(z), o]() {
            return train_ensemble(arch, x, y, z, o);
          });
          const auto shape = r.shape();
          const std::vector<std::size_t> loss_shape = {static_cast<std::size_t>(r.members),
                                                       static_cast<std::size_t>(r.checkpoints)};
          const double seconds = r.seconds;
          return nb::make_tuple(to_numpy(std::move(r.predictions), shape), to_numpy(std::move(r.train_loss), loss_shape),
                                seconds);
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("train_y"), nb::arg("test_x"), nb::arg("members"),
        nb::arg("steps"), nb::arg("learning_rate"), nb::arg("seed"), nb::arg("checkpoints"),
        nb::arg("batch_size") = 0, nb::arg("loss") = "mse", nb::arg("threads") = 0);
  m.def("member_seed", &member_seed, nb::arg("seed"), nb::arg("member"));
}

}  // namespace emergent::python
