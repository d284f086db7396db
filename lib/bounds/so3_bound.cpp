// Finite subgroups of SO(3): exact covering angle and the continuous-group bound
// (include/emergent/bounds/so3_bound.hpp; mathematics in docs/continuous_bound_derivation.md §9).
#include "emergent/bounds/so3_bound.hpp"

#include "emergent/core/cancellation.hpp"
#include "emergent/core/random.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"

#include <Eigen/Geometry>
#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

namespace emergent {

namespace {

using detail::bad;
using detail::value_text;
using Eigen::Index;
using Eigen::Matrix3d;
using Eigen::Vector3d;
using Eigen::Vector4d;

// The Haar stream shared with `emergent experiment cross-product`.
constexpr std::uint64_t kHaarStream = 4;

bool is_rotation(const Matrix3d& r) {
  return r.allFinite() && (r.transpose() * r - Matrix3d::Identity()).cwiseAbs().maxCoeff() <= 1e-9 &&
         std::fabs(r.determinant() - 1) <= 1e-9;
}

std::vector<Vector4d> unit_quaternions(const std::vector<Matrix3d>& rotations, const char* fn) {
  if (rotations.empty()) bad(std::string(fn) + ": rotations: expected at least one rotation, got 0");
  std::vector<Vector4d> q;
  for (std::size_t g = 0; g < rotations.size(); ++g) {
    if (!is_rotation(rotations[g]))
      bad(std::string(fn) + ": rotations[" + std::to_string(g) + "] is not a rotation (orthogonal, det 1)");
    const Eigen::Quaterniond u(rotations[g]);
    q.push_back(Vector4d(u.w(), u.x(), u.y(), u.z()).normalized());
  }
  return q;
}

Vector4d quaternion_of(const Matrix3d& r) {
  const Eigen::Quaterniond u(r);
  return Vector4d(u.w(), u.x(), u.y(), u.z()).normalized();
}

// min_b angle(b⁻¹R) for the unit quaternion p of R.
double distance_in_quaternions(const Vector4d& p, const std::vector<Vector4d>& q) {
  double best = 0;
  for (const auto& b : q) best = std::max(best, std::fabs(b.dot(p)));
  return 2 * std::acos(std::min(1.0, best));
}

// Hamilton product a·b of quaternions (w, x, y, z).
Vector4d multiply(const Vector4d& a, const Vector4d& b) {
  return {a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3], a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
          a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1], a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0]};
}

struct Cell {
  double radius = 0;              // max ‖r‖ over the vertices (≥ kBox/2: unbounded)
  std::vector<Vector3d> deepest;  // vertices with ‖r‖ = radius
};

constexpr double kBox = 1e8;  // |r_i| ≤ kBox closes unbounded cells (angle 2·arctan(1e8) ≈ π)

// The identity's Voronoi cell {r : |w_b + v_b·r| ≤ 1} in Rodrigues coordinates (so3_covering).
Cell identity_cell(const std::vector<Vector4d>& q) {
  // Half-spaces n·r ≤ c with unit n; of parallel ones only the tightest matters.
  std::vector<std::pair<Vector3d, double>> planes;
  auto add = [&](Vector3d n, double c) {
    const double len = n.norm();
    n /= len, c /= len;
    for (auto& [m, d] : planes)
      if ((m - n).norm() < 1e-12) {
        d = std::min(d, c);
        return;
      }
    planes.emplace_back(n, c);
  };
  for (const Vector4d& b : q) {
    const Vector3d v = b.tail<3>();
    if (v.norm() < 1e-12) continue;  // ±identity
    add(v, 1 - b[0]);
    add(-v, 1 + b[0]);
  }
  for (int i = 0; i < 3; ++i) add(Vector3d::Unit(i), kBox), add(-Vector3d::Unit(i), kBox);
  Cell cell;
  const std::size_t n = planes.size();
  std::vector<Vector3d> vertices;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = a + 1; b < n; ++b)
      for (std::size_t c = b + 1; c < n; ++c) {
        Matrix3d A;
        A.row(0) = planes[a].first.transpose(), A.row(1) = planes[b].first.transpose(), A.row(2) = planes[c].first.transpose();
        if (std::fabs(A.determinant()) < 1e-9) continue;
        const Vector3d r = A.partialPivLu().solve(Vector3d(planes[a].second, planes[b].second, planes[c].second));
        const double tol = 1e-10 * (1 + r.norm());
        bool inside = r.allFinite();
        for (std::size_t p = 0; inside && p < n; ++p) inside = planes[p].first.dot(r) <= planes[p].second + tol;
        if (!inside) continue;
        const double len = r.norm();
        if (len > cell.radius * (1 + 1e-12)) cell.radius = len, vertices.clear();
        if (len >= cell.radius * (1 - 1e-12)) {
          bool seen = false;
          for (const Vector3d& v : vertices) seen = seen || (v - r).norm() <= 1e-9 * (1 + len);
          if (!seen) vertices.push_back(r);
        }
      }
  cell.deepest = vertices;
  return cell;
}

Matrix3d rotation_of_rodrigues(const Vector3d& r) {
  const Vector4d p = Vector4d(1, r[0], r[1], r[2]).normalized();
  return Eigen::Quaterniond(p[0], p[1], p[2], p[3]).toRotationMatrix();
}

// The architecture must be an MLP (derivation §1, A2): its kernels are then O(d)-invariant.
void require_mlp(const Architecture& arch, const char* fn) {
  if (arch.expects_images())
    throw SpecError(std::string(fn) + ": architecture '" + arch.to_string() +
                    "' starts with conv/flatten/gap; expected an MLP (dense layers and activations only)");
  for (const Layer& l : arch.layers())
    if (l.kind != LayerKind::Dense && l.kind != LayerKind::Activation)
      throw SpecError(std::string(fn) + ": layer '" + l.to_string() + "' of '" + arch.to_string() +
                      "' is not dense or an activation; expected an MLP (the derivation needs O(d)-invariant kernels)");
}

Eigen::MatrixXd kron_identity(Index copies, const Matrix3d& r) {
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(3 * copies, 3 * copies);
  for (Index c = 0; c < copies; ++c) m.block<3, 3>(3 * c, 3 * c) = r;
  return m;
}

std::string degrees(double radians) { return value_text(radians * 180 / std::numbers::pi) + "°"; }

}  // namespace

// ---- covering ------------------------------------------------------------------------------------

So3Covering so3_covering(const std::vector<Matrix3d>& rotations) {
  const std::vector<Vector4d> q = unit_quaternions(rotations, "so3_covering");
  const std::size_t n = q.size();
  So3Covering out;
  // Closed under products? (then B acts transitively on the cells by left multiplication)
  out.group = true;
  for (std::size_t a = 0; a < n && out.group; ++a)
    for (std::size_t b = 0; b < n && out.group; ++b) {
      const Vector4d ab = multiply(q[a], q[b]);
      bool found = false;
      for (std::size_t c = 0; c < n && !found; ++c) found = std::fabs(std::fabs(ab.dot(q[c])) - 1) < 1e-9;
      out.group = found;
    }
  double radius = -1;
  std::vector<Matrix3d> deepest;
  for (std::size_t a = 0; a < (out.group ? std::size_t{1} : n); ++a) {
    // The cell of a is a·(the identity's cell of a⁻¹B).
    const Vector4d ainv(q[a][0], -q[a][1], -q[a][2], -q[a][3]);
    std::vector<Vector4d> shifted;
    for (const Vector4d& b : q) shifted.push_back(multiply(ainv, b));
    const Cell cell = identity_cell(shifted);
    if (cell.radius > radius * (1 + 1e-12)) radius = cell.radius, deepest.clear();
    if (cell.radius >= radius * (1 - 1e-12))
      for (const Vector3d& r : cell.deepest) deepest.push_back(rotations[a] * rotation_of_rodrigues(r));
  }
  if (radius >= kBox / 2) {
    out.angle = std::numbers::pi;  // unbounded cell: some rotation is a half-turn away from every b
    return out;
  }
  out.angle = 2 * std::atan(radius);
  out.deepest = std::move(deepest);
  return out;
}

double so3_covering_angle(const std::vector<Matrix3d>& rotations) { return so3_covering(rotations).angle; }

Matrix3d haar_rotation(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  const NormalStream s(seed, stream);
  Vector4d v;
  for (int c = 0; c < 4; ++c) v[c] = s.normal(4 * i + static_cast<std::uint64_t>(c));
  v.normalize();
  return Eigen::Quaterniond(v[0], v[1], v[2], v[3]).toRotationMatrix();
}

double so3_distance_to_set(const Matrix3d& r, const std::vector<Matrix3d>& rotations) {
  return distance_in_quaternions(quaternion_of(r), unit_quaternions(rotations, "so3_distance_to_set"));
}

std::vector<Matrix3d> so3_rotations_of(const Representation& group) {
  const char* fn = "so3_rotations_of";
  if (group.shape().image || group.dim() % 3 != 0 || group.dim() == 0)
    bad(std::string(fn) + ": group '" + group.name() + "' acts on " + group.shape().to_string() +
        "; expected vectors in ℝ^{3m} (SO(3) rotates coordinate triples)");
  const Index m = group.dim() / 3;
  std::vector<Matrix3d> out;
  for (int g = 0; g < group.size(); ++g) {
    const Eigen::MatrixXd full = group.matrix(g);
    const Matrix3d r = full.topLeftCorner<3, 3>();
    const double defect = (full - kron_identity(m, r)).cwiseAbs().maxCoeff();
    if (!is_rotation(r) || defect > 1e-9)
      bad(std::string(fn) + ": element " + std::to_string(g) + " ('" + group.label(g) + "') of '" + group.name() +
          "' is not I_m ⊗ R with R a rotation (defect " + value_text(defect) + ", det " + value_text(r.determinant()) +
          "); expected the same rotation on every coordinate triple (docs/continuous_bound_derivation.md §9)");
    out.push_back(r);
  }
  return out;
}

// ---- the bound -----------------------------------------------------------------------------------

bool So3BoundOptions::IsValid(std::string* error) const {
  std::string e;
  std::string flow_error;
  if (times.empty()) e = "times is empty; expected at least one time t >= 0";
  else if (haar_rotations < 1 || haar_rotations > 1000000)
    e = "haar_rotations = " + std::to_string(haar_rotations) + ", expected 1..1000000";
  else if (!(covering_angle >= 0 && covering_angle <= std::numbers::pi / 2))
    e = "covering_angle = " + value_text(covering_angle) + ", expected 0 (exact) or an angle in (0, π/2]";
  else if (!flow.IsValid(&flow_error)) e = "flow: " + flow_error;
  if (error) *error = e;
  return e.empty();
}

std::string So3BoundResult::to_string() const {
  std::ostringstream s;
  s << group << " (" << group_size << " rotations) ⊂ SO(3), " << (equivariant ? "ρ_Y = R" : "invariant outputs")
    << ": θ_B " << degrees(covering_angle) << ", κ " << value_text(kappa) << ", " << train_size << " training points ("
    << augmented_size << " augmented), " << times.size() << " time(s), " << (times.empty() ? 0 : points.size() / times.size())
    << " test point(s), " << rotations << " probe rotations; bound/measured in [" << value_text(min_ratio) << ", "
    << value_text(max_ratio) << "]; Θ: " << spectral.to_string();
  return s.str();
}

const So3BoundPoint& So3BoundResult::at(std::size_t time_index, Index test_index) const {
  const std::size_t nz = times.empty() ? 0 : points.size() / times.size();
  if (time_index >= times.size() || test_index < 0 || static_cast<std::size_t>(test_index) >= nz)
    bad("So3BoundResult::at: (" + std::to_string(time_index) + ", " + std::to_string(test_index) + ") is out of range; " +
        std::to_string(times.size()) + " time(s), " + std::to_string(nz) + " test point(s)");
  return points[time_index * nz + static_cast<std::size_t>(test_index)];
}

So3BoundResult so3_group_bound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                               const Inputs& test_x, const Representation& subgroup,
                               const Representation& subgroup_output, const So3BoundOptions& options) {
  const char* fn = "so3_group_bound";
  if (std::string why; !options.IsValid(&why)) bad(std::string(fn) + ": invalid options: " + why);
  detail::check_times(options.times, fn, detail::EmptyTimes::Rejected);
  require_mlp(arch, fn);
  if (!(test_x.shape == train_x.shape))
    bad(std::string(fn) + ": test_x has example shape " + test_x.shape.to_string() + " but train_x has " +
        train_x.shape.to_string() + "; expected the same");
  if (!(subgroup.shape() == train_x.shape))
    bad(std::string(fn) + ": subgroup '" + subgroup.name() + "' acts on " + subgroup.shape().to_string() +
        " but the inputs have shape " + train_x.shape.to_string());
  if (train_y.rows() != train_x.count() || train_y.cols() != arch.outputs())
    bad(std::string(fn) + ": train_y is " + std::to_string(train_y.rows()) + " × " + std::to_string(train_y.cols()) +
        "; expected " + std::to_string(train_x.count()) + " × " + std::to_string(arch.outputs()) +
        " (one row per training input, one column per output)");
  if (!subgroup.exact())
    bad(std::string(fn) + ": subgroup '" + subgroup.name() +
        "' is not a verified finite group; expected an exact group (Theorem 5.2 needs augmentation by a group)");
  const Index k = train_y.cols();
  if (subgroup_output.size() != subgroup.size() || subgroup_output.dim() != k)
    bad(std::string(fn) + ": subgroup_output '" + subgroup_output.name() + "' has " +
        std::to_string(subgroup_output.size()) + " elements on ℝ^" + std::to_string(subgroup_output.dim()) +
        ", expected " + std::to_string(subgroup.size()) + " on ℝ^" + std::to_string(k));
  const std::vector<Matrix3d> rot = so3_rotations_of(subgroup);
  const int nb = subgroup.size();
  // ρ_Y must extend to all of SO(3): trivial, or R on every output triple.
  bool trivial = true, rotating = k % 3 == 0;
  for (int g = 0; g < nb; ++g) {
    const Eigen::MatrixXd y = subgroup_output.matrix(g);
    trivial = trivial && (y - Eigen::MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff() <= 1e-12;
    rotating = rotating && (y - kron_identity(k / 3, rot[g])).cwiseAbs().maxCoeff() <= 1e-12;
  }
  if (!trivial && !rotating)
    bad(std::string(fn) + ": subgroup_output '" + subgroup_output.name() +
        "' is neither trivial nor I ⊗ R_b on the output triples; expected an action that extends to all of SO(3) "
        "(docs/continuous_bound_derivation.md §9)");
  const bool equivariant = !trivial;
  const auto rho_y = [&](const Matrix3d& r) -> Eigen::MatrixXd {
    return equivariant ? kron_identity(k / 3, r) : Eigen::MatrixXd::Identity(k, k);
  };

  So3BoundResult res;
  const So3Covering cover = so3_covering(rot);
  res.group = subgroup.name();
  res.group_size = nb;
  res.equivariant = equivariant;
  res.exact_covering_angle = cover.angle;
  res.covering_angle = options.covering_angle > 0 ? options.covering_angle : cover.angle;
  if (res.covering_angle > std::numbers::pi / 2 + 1e-12)
    bad(std::string(fn) + ": subgroup '" + subgroup.name() + "' has covering angle " + degrees(res.covering_angle) +
        "; expected ≤ 90° (the derivation needs cos θ_B ≥ 0, docs/continuous_bound_derivation.md §9)");
  const double theta = res.covering_angle, kappa = 2 * std::sin(theta / 2), cos_theta = std::cos(theta);
  res.kappa = kappa;
  res.times = options.times;
  res.train_size = train_x.count();

  // The infinite ensemble on the B-augmented set: μ_t = Θ(·, X)α_t, α_t = Θ⁻¹T_tY.
  const AugmentedSet aug = augment(train_x, train_y, subgroup, subgroup_output);
  res.augmented_size = aug.x.count();
  const Kernels train = kernels(arch, aug.x, options.kernel);
  const GradientFlow flow(train.ntk, Eigen::MatrixXd(), aug.y, options.flow);
  res.spectral = flow.summary();
  const std::size_t nt = options.times.size();
  const auto alpha = flow.mean(options.times, Eigen::MatrixXd::Identity(aug.x.count(), aug.x.count()));
  std::vector<double> f_norm(nt);
  for (std::size_t t = 0; t < nt; ++t)
    f_norm[t] = std::sqrt(std::max(0.0, (alpha[t].transpose() * train.ntk * alpha[t]).trace()));

  // Probe rotations: identity, Haar samples, the deepest holes of B, then B itself (the defect).
  std::vector<Matrix3d> probe = {Matrix3d::Identity()};
  for (int r = 0; r < options.haar_rotations; ++r)
    probe.push_back(haar_rotation(options.seed, kHaarStream, static_cast<std::uint64_t>(r)));
  for (const Matrix3d& r : cover.deepest) probe.push_back(r);
  const int measured_end = static_cast<int>(probe.size());
  res.rotations = measured_end - 1;
  probe.insert(probe.end(), rot.begin(), rot.end());
  const std::vector<Vector4d> qb = unit_quaternions(rot, fn);
  std::vector<double> distance(probe.size());
  for (std::size_t j = 0; j < probe.size(); ++j) distance[j] = distance_in_quaternions(quaternion_of(probe[j]), qb);
  std::vector<Eigen::MatrixXd> probe_y(probe.size());
  for (std::size_t j = 0; j < probe.size(); ++j) probe_y[j] = rho_y(probe[j]);

  const Index nz = test_x.count(), d = train_x.x.cols(), m = d / 3;
  res.points.resize(nt * static_cast<std::size_t>(nz));
  for (Index i = 0; i < nz; ++i) {
    throw_if_cancelled();
    const Eigen::VectorXd z = test_x.x.row(i).transpose();
    RowMatrix rows(static_cast<Index>(probe.size()), d);
    for (std::size_t j = 0; j < probe.size(); ++j) rows.row(static_cast<Index>(j)) = (kron_identity(m, probe[j]) * z).transpose();
    const auto mu = flow.mean(options.times, kernels(arch, Inputs(rows, test_x.shape), aug.x, options.kernel).ntk);
    // w: ‖w‖ = ‖z‖ and z·w = ‖z‖² cos θ_B (any such w: an MLP kernel sees only norms and z·w).
    RowMatrix zw(2, d);
    zw.row(0) = z.transpose();
    if (z.norm() > 0) {
      Eigen::VectorXd e = Eigen::VectorXd::Unit(d, std::fabs(z.normalized()[0]) > 0.9 ? 1 : 0);
      Eigen::VectorXd perp = e - z.dot(e) / z.squaredNorm() * z;
      perp *= z.norm() / perp.norm();
      zw.row(1) = (cos_theta * z + std::sin(theta) * perp).transpose();
    } else {
      zw.row(1) = z.transpose();
    }
    const Eigen::MatrixXd kzw = kernels(arch, Inputs(zw, test_x.shape), options.kernel).ntk;
    const double kzz = kzw(0, 0), kw = kzw(0, 1);
    for (std::size_t t = 0; t < nt; ++t) {
      So3BoundPoint& p = res.points[t * static_cast<std::size_t>(nz) + static_cast<std::size_t>(i)];
      p.test_index = i;
      p.time = options.times[t];
      p.f_norm = f_norm[t];
      const Eigen::VectorXd mu0 = mu[t].row(0).transpose();
      for (int j = 1; j < static_cast<int>(probe.size()); ++j) {
        const double v = (mu[t].row(j).transpose() - probe_y[static_cast<std::size_t>(j)] * mu0).norm();
        if (j < measured_end) {
          if (v > p.measured) p.measured = v, p.worst_distance = distance[static_cast<std::size_t>(j)];
        } else {
          p.group_defect = std::max(p.group_defect, v);
        }
      }
      p.split_bound = f_norm[t] * std::sqrt(std::max(0.0, 2 * (kzz - kw))) + (equivariant ? kappa * mu0.norm() : 0.0);
      p.joint_bound = f_norm[t] * std::sqrt(std::max(0.0, 2 * (kzz - (equivariant ? cos_theta : 1.0) * kw)));
      p.roundoff = 2 * p.group_defect;
      p.bound = std::min(p.split_bound, p.joint_bound) + p.roundoff;
      p.ratio = p.measured > 0 ? p.bound / p.measured : std::numeric_limits<double>::infinity();
    }
  }
  res.min_ratio = std::numeric_limits<double>::infinity();
  res.max_ratio = 0;
  for (const So3BoundPoint& p : res.points)
    if (p.measured > 0) res.min_ratio = std::min(res.min_ratio, p.ratio), res.max_ratio = std::max(res.max_ratio, p.ratio);
  if (res.max_ratio == 0) res.min_ratio = res.max_ratio = std::numeric_limits<double>::infinity();
  return res;
}

}  // namespace emergent
