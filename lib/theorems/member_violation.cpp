// Violation of equivariance by single members (include/emergent/theorems/member_violation.hpp).
#include "emergent/theorems/member_violation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "emergent/core/random.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "detail/theorem_support.hpp"

#include "detail/errors.hpp"
#include "detail/format.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using detail::bad;
using detail::num;
using detail::is_spatial;
using detail::check_inputs_for;
using detail::time_text;


double max_abs(const MatrixXd& a) { return a.size() ? a.cwiseAbs().maxCoeff() : 0.0; }

void require_readout(const Architecture& arch, const char* where) {
  if (is_spatial(arch))
    bad(std::string(where) + ": arch '" + arch.to_string() + "' keeps pixel indices; expected a readout or an MLP");
}

// value(member, time, row, out) over rows g·m + i; fills one time of the report.
template <class F>
void member_violations(MemberViolationResult& r, const Representation& rho_y, int members, Index m, Index k, F value,
                       int time) {
  const int n = rho_y.size();
  double vmax = 0, vsum = 0, sc = 0;
  int diverged = 0;
  MatrixXd avg = MatrixXd::Zero(static_cast<Index>(n) * m, k);
  for (int mem = 0; mem < members; ++mem) {
    MatrixXd f(static_cast<Index>(n) * m, k);
    for (Index row = 0; row < f.rows(); ++row)
      for (Index j = 0; j < k; ++j) f(row, j) = value(mem, time, row, j);
    if (!f.allFinite()) ++diverged;
    avg += f / members;
    sc = std::max(sc, max_abs(f));
    double v = 0;
    for (int g = 0; g < n; ++g) {
      const MatrixXd expect = f.topRows(m) * rho_y.matrix(g).transpose();
      v = std::max(v, max_abs(f.middleRows(g * m, m) - expect));
    }
    vmax = std::max(vmax, v);
    vsum += v;
  }
  double va = 0;
  for (int g = 0; g < n; ++g) va = std::max(va, max_abs(avg.middleRows(g * m, m) - avg.topRows(m) * rho_y.matrix(g).transpose()));
  // std::max drops NaN: a diverged member makes every summary of this time NaN instead of 0.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.member_max.push_back(diverged ? nan : vmax);
  r.member_mean.push_back(diverged ? nan : vsum / members);
  r.sample_mean.push_back(diverged ? nan : va);
  r.diverged.push_back(diverged);
  r.scale.push_back(sc);
}

}  // namespace

std::string MemberViolationResult::to_string() const {
  std::ostringstream s;
  s << kind << ", " << members << " members:";
  for (std::size_t q = 0; q < times.size(); ++q)
    s << "\n  " << (kind.rfind("finite", 0) == 0 ? "step " : "t=") << time_text(times[q]) << ": member violation max "
      << num(member_max[q]) << " (mean " << num(member_mean[q]) << "), of their average " << num(sample_mean[q])
      << ", scale " << num(scale[q]);
  return s.str();
}

MemberViolationResult linearized_member_violation(const Architecture& arch, const Inputs& train_x,
                                                  const RowMatrix& train_y, const Inputs& inputs,
                                                  const Representation& rho_x, const Representation& rho_y,
                                                  const std::vector<double>& times, int members, std::uint64_t seed,
                                                  const KernelOptions& kernel, const GradientFlowOptions& flow) {
  require_readout(arch, "linearized_member_violation");
  check_inputs_for(rho_x, inputs, "inputs", "linearized_member_violation");
  if (members < 1) bad("linearized_member_violation: members = " + std::to_string(members) + ", expected >= 1");
  const AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
  const Inputs all = orbit_of(inputs, rho_x);
  const Kernels tr = kernels(arch, a.x, kernel);
  const Kernels cr = kernels(arch, all, a.x, kernel);
  const Kernels tt = kernels(arch, all, kernel);
  const GradientFlow f(tr.ntk, tr.nngp, MatrixXd(a.y), flow);
  const LinearizedEnsemble e = f.sample_members(times, cr.ntk, cr.nngp, tt.nngp, members, seed);
  MemberViolationResult r;
  r.kind = "linearized (infinite width)";
  r.members = members;
  r.times = times;
  for (int q = 0; q < static_cast<int>(times.size()); ++q)
    member_violations(r, rho_y, members, inputs.count(), a.y.cols(),
                      [&](int mem, int t, Index row, Index j) { return e(mem, t, row, j); }, q);
  return r;
}

MemberViolationResult finite_member_violation(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                              const Inputs& inputs, const Representation& rho_x,
                                              const Representation& rho_y, const TrainingOptions& options) {
  require_readout(arch, "finite_member_violation");
  check_inputs_for(rho_x, inputs, "inputs", "finite_member_violation");
  const AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
  const Inputs all = orbit_of(inputs, rho_x);
  const EnsembleResult e = train_ensemble(arch, a.x, a.y, all, options);
  MemberViolationResult r;
  r.kind = "finite width (" + arch.to_string() + ", gradient descent, lr " + num(options.learning_rate) + ")";
  r.members = e.members;
  for (int c : options.checkpoints) r.times.push_back(c);
  for (int q = 0; q < e.checkpoints; ++q)
    member_violations(r, rho_y, e.members, inputs.count(), a.y.cols(),
                      [&](int mem, int t, Index row, Index j) { return e.at(mem, t, row, j); }, q);
  return r;
}

}  // namespace emergent
