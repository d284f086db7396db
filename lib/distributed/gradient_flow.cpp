// Gradient flow and NNGP posterior on ScaLAPACK (include/emergent/distributed/gradient_flow.hpp).
// The steps mirror lib/dynamics/gradient_flow.cpp one for one, with every N×N and N_test×N matrix
// block-cyclic over a near-square process grid.
#include "emergent/distributed/gradient_flow.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "detail/format.hpp"
#include "emergent/distributed/collective.hpp"
#include "emergent/dynamics/spectral_filter.hpp"

extern "C" {
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int* context, const char* order, int rows, int cols);
void Cblacs_gridinfo(int context, int* rows, int* cols, int* row, int* col);
void Cblacs_gridexit(int context);
int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc, const int* nprocs);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb, const int* irsrc, const int* icsrc,
               const int* context, const int* lld, int* info);
void pdsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* ia, const int* ja, const int* desca,
              double* w, double* z, const int* iz, const int* jz, const int* descz, double* work, const int* lwork,
              int* iwork, const int* liwork, int* info);
void pdgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
             const double* a, const int* ia, const int* ja, const int* desca, const double* b, const int* ib,
             const int* jb, const int* descb, const double* beta, double* c, const int* ic, const int* jc,
             const int* descc);
void pdgeadd_(const char* trans, const int* m, const int* n, const double* alpha, const double* a, const int* ia,
              const int* ja, const int* desca, const double* beta, double* c, const int* ic, const int* jc,
              const int* descc);
}

namespace emergent::distributed {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

// OpenBLAS (OpenMP build) sizes each call by omp_get_max_threads(): one thread per rank, as
// lib/detail/linear_algebra does for every BLAS call.
struct SerialBlas {
  SerialBlas() : saved(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SerialBlas() { omp_set_num_threads(saved); }
  int saved;
};

int checked_int(Index v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max())
    throw std::invalid_argument(std::string(what) + " = " + std::to_string(v) + ": exceeds ScaLAPACK's 32-bit indices");
  return static_cast<int>(v);
}

// The BLACS process grid: rows × cols = P with rows the largest divisor of P ≤ √P, row-major.
class Grid {
 public:
  explicit Grid(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_size(comm, &size_);
    MPI_Comm_rank(comm, &rank_);
    rows_ = 1;
    for (int r = 1; r * r <= size_; ++r)
      if (size_ % r == 0) rows_ = r;
    cols_ = size_ / rows_;
    handle_ = Csys2blacs_handle(comm);
    context_ = handle_;
    Cblacs_gridinit(&context_, "Row", rows_, cols_);
    Cblacs_gridinfo(context_, &rows_, &cols_, &row_, &col_);
  }
  ~Grid() {
    Cblacs_gridexit(context_);
    Cfree_blacs_system_handle(handle_);
  }
  Grid(const Grid&) = delete;
  Grid& operator=(const Grid&) = delete;

  MPI_Comm comm_;
  int size_ = 1, rank_ = 0, rows_ = 1, cols_ = 1, row_ = 0, col_ = 0, handle_ = 0, context_ = 0;
};

// One rank's part of a block-cyclic m×n matrix (ScaLAPACK's 2D block-cyclic layout, first block on
// process (0, 0)): the local rows and columns in column-major order, their global indices.
struct Distributed {
  int m = 0, n = 0;
  int desc[9] = {};
  MatrixXd local;  // lld × local columns, lld = max(1, local rows)
  std::vector<Index> rows, cols;

  Distributed() = default;
  Distributed(const Grid& g, Index m_, Index n_, int nb) {
    m = checked_int(m_, "matrix rows");
    n = checked_int(n_, "matrix columns");
    const int zero = 0;
    const int mloc = numroc_(&m, &nb, &g.row_, &zero, &g.rows_);
    const int nloc = numroc_(&n, &nb, &g.col_, &zero, &g.cols_);
    const int lld = std::max(1, mloc);
    int info = 0;
    descinit_(desc, &m, &n, &nb, &nb, &zero, &zero, &g.context_, &lld, &info);
    if (info != 0) throw std::runtime_error("ScaLAPACK descinit failed (info " + std::to_string(info) + ")");
    local = MatrixXd::Zero(lld, nloc);
    for (int i = 0; i < mloc; ++i) rows.push_back((static_cast<Index>(i / nb) * g.rows_ + g.row_) * nb + i % nb);
    for (int j = 0; j < nloc; ++j) cols.push_back((static_cast<Index>(j / nb) * g.cols_ + g.col_) * nb + j % nb);
  }
  Index local_rows() const { return static_cast<Index>(rows.size()); }
  Index local_cols() const { return static_cast<Index>(cols.size()); }
  double* data() { return local.data(); }
  const double* data() const { return local.data(); }
};

Distributed like(const Grid& g, const Distributed& a) { return Distributed(g, a.m, a.n, a.desc[4]); }

// C = alpha·op(A)(ia.., ja..)·op(B)(ib.., jb..) + beta·C, global 1-based offsets as PBLAS.
void gemm(char ta, char tb, int m, int n, int k, double alpha, const Distributed& a, int ja, const Distributed& b,
          int jb, double beta, Distributed& c) {
  const int one = 1;
  pdgemm_(&ta, &tb, &m, &n, &k, &alpha, a.data(), &one, &ja, a.desc, b.data(), &one, &jb, b.desc, &beta, c.data(),
          &one, &one, c.desc);
}

// C = beta·C + alpha·op(A), whole matrices.
void add(char trans, double alpha, const Distributed& a, double beta, Distributed& c) {
  const int one = 1;
  pdgeadd_(&trans, &c.m, &c.n, &alpha, a.data(), &one, &one, a.desc, &beta, c.data(), &one, &one, c.desc);
}

// Fill this rank's blocks from a kernel source (no communication).
void fill(Distributed* ntk, Distributed* nngp, const KernelBlockSource& source) {
  const Distributed& shape = ntk ? *ntk : *nngp;
  if (shape.rows.empty() || shape.cols.empty()) return;
  MatrixXd t, k;
  source(shape.rows, shape.cols, ntk ? &t : nullptr, nngp ? &k : nullptr);
  auto place = [&](const MatrixXd& block, Distributed& to, const char* name) {
    if (block.rows() != shape.local_rows() || block.cols() != shape.local_cols())
      throw std::invalid_argument(std::string("kernel source: the ") + name + " block is " + std::to_string(block.rows()) +
                                  "x" + std::to_string(block.cols()) + ", expected " + std::to_string(shape.local_rows()) +
                                  "x" + std::to_string(shape.local_cols()));
    for (Index j = 0; j < block.cols(); ++j)
      for (Index i = 0; i < block.rows(); ++i)
        if (!std::isfinite(block(i, j)))
          throw std::invalid_argument(std::string("kernel source: ") + name + " entry (" + std::to_string(shape.rows[i]) +
                                      ", " + std::to_string(shape.cols[j]) + ") is not finite");
    to.local.topRows(block.rows()) = block;
  };
  if (ntk) place(t, *ntk, "NTK");
  if (nngp) place(k, *nngp, "NNGP");
}

// Test hook (docs/cli.md, MPI errors): EMERGENT_MPI_TEST_BAD_ALLOC="R:site" makes rank R throw
// std::bad_alloc at `site` ("gather": inside an agreement step; "products": between PBLAS calls,
// where no agreement is possible), as an allocation there would when memory runs out.
void injected_bad_alloc(MPI_Comm comm, const char* site) {
  static const char* hook = std::getenv("EMERGENT_MPI_TEST_BAD_ALLOC");
  if (!hook) return;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const std::string v(hook);
  const std::size_t colon = v.find(':');
  if (colon != std::string::npos && std::atoi(v.c_str()) == rank && v.substr(colon + 1) == site) throw std::bad_alloc();
}

// The whole matrix on rank 0 (empty elsewhere): every entry is owned by one rank, the others add
// zeros, so the sum keeps its bits. The buffers are allocated in an agreement step (an allocation
// that fails ends every rank there), then reduced.
MatrixXd gather(const Distributed& a, MPI_Comm comm, int rank) {
  MatrixXd full, out;
  collectively(comm, [&] {
    injected_bad_alloc(comm, "gather");
    full = MatrixXd::Zero(a.m, a.n);
    for (Index j = 0; j < a.local_cols(); ++j)
      for (Index i = 0; i < a.local_rows(); ++i) full(a.rows[i], a.cols[j]) = a.local(i, j);
    if (rank == 0) out = MatrixXd::Zero(a.m, a.n);
  });
  const std::size_t total = static_cast<std::size_t>(full.size()), chunk = std::size_t{1} << 26;
  for (std::size_t offset = 0; offset < total; offset += chunk) {
    const int count = static_cast<int>(std::min(chunk, total - offset));
    MPI_Reduce(full.data() + offset, rank == 0 ? out.data() + offset : nullptr, count, MPI_DOUBLE, MPI_SUM, 0, comm);
  }
  return out;
}

void global_diagonal_sum(const Distributed& a, MPI_Comm comm, double* trace) {
  double mine = 0.0;
  for (Index j = 0; j < a.local_cols(); ++j)
    for (Index i = 0; i < a.local_rows(); ++i)
      if (a.rows[i] == a.cols[j]) mine += a.local(i, j);
  MPI_Allreduce(&mine, trace, 1, MPI_DOUBLE, MPI_SUM, comm);
}

// The spectrum of a symmetric kernel matrix with the summary and kept directions of the
// single-process solver (the last `rank` eigenvectors, columns N − rank + 1 .. N of z, 1-based).
struct Spectrum {
  Distributed vectors;
  VectorXd kept;  // regularized kept eigenvalues, ascending
  VectorXd raw;   // clipped eigenvalues of the matrix itself, on the kept directions
  SpectralSummary summary;
  int first_kept = 1;  // 1-based column of the first kept eigenvector
};

// pdsyevd (lower triangle of a copy of `matrix`), then summarize_spectrum. Allocations and checks
// in agreement steps, the ScaLAPACK calls (collective inside) between them.
Spectrum decompose(const Grid& g, const Distributed& matrix, const GradientFlowOptions& options) {
  const MPI_Comm comm = g.comm_;
  const int one = 1;
  const char jobz = 'V', uplo = 'L';
  Spectrum s;
  Distributed a;
  VectorXd lambda;
  collectively(comm, [&] {
    a = matrix;  // pdsyevd destroys its input
    s.vectors = like(g, matrix);
    lambda.resize(matrix.n);
  });
  double trace = 0.0, work_query = 0.0;
  int lwork = -1, liwork = -1, info = 0, iwork_query = 0;
  without_agreement(comm, [&] {
    global_diagonal_sum(matrix, comm, &trace);
    pdsyevd_(&jobz, &uplo, &a.n, a.data(), &one, &one, a.desc, lambda.data(), s.vectors.data(), &one, &one,
             s.vectors.desc, &work_query, &lwork, &iwork_query, &liwork, &info);
  });
  std::vector<double> work;
  std::vector<int> iwork;
  collectively(comm, [&] {
    if (info != 0) throw std::runtime_error("ScaLAPACK pdsyevd workspace query failed (info " + std::to_string(info) + ")");
    // The query is known to come out short for some grids: a margin (Netlib's own drivers add one).
    lwork = static_cast<int>(work_query * 1.5) + 4 * a.n + 1024;
    liwork = std::max(iwork_query, 7 * a.n + 8 * g.cols_ + 2) + 64;
    work.resize(static_cast<std::size_t>(lwork));
    iwork.resize(static_cast<std::size_t>(liwork));
  });
  without_agreement(comm, [&] {
    pdsyevd_(&jobz, &uplo, &a.n, a.data(), &one, &one, a.desc, lambda.data(), s.vectors.data(), &one, &one,
             s.vectors.desc, work.data(), &lwork, iwork.data(), &liwork, &info);
  });
  collectively(comm, [&] {
    if (info != 0)
      throw std::runtime_error("ScaLAPACK pdsyevd failed (info " + std::to_string(info) + "): the eigensolver did not converge");
    s.summary = summarize_spectrum(lambda, trace, options, true);
    const Index n = lambda.size(), r = s.summary.rank;
    s.raw = lambda.tail(r).cwiseMax(0.0);
    s.kept = s.raw.array() + s.summary.regularizer;
    s.first_kept = static_cast<int>(n - r + 1);
  });
  return s;
}

// Scale the local columns (rows) of `a` by factor(global index).
template <class F>
void scale_columns(Distributed& a, F factor) {
  for (Index j = 0; j < a.local_cols(); ++j) a.local.col(j) *= factor(a.cols[j]);
}
template <class F>
void scale_rows(Distributed& a, F factor) {
  for (Index i = 0; i < a.local_rows(); ++i) a.local.row(i) *= factor(a.rows[i]);
}

void set_from(Distributed& a, const MatrixXd& global) {
  for (Index j = 0; j < a.local_cols(); ++j)
    for (Index i = 0; i < a.local_rows(); ++i) a.local(i, j) = global(a.rows[i], a.cols[j]);
}

// As the single-process solver (gradient_flow.cpp, symmetrized()): round-off asymmetry up to
// rtol·max|A| is removed, A ← ½(A + Aᵀ); more is refused naming the matrix. Collective.
void symmetrize(const Grid& g, Distributed& a, const char* name, double rtol) {
  Distributed diff, copy;
  collectively(g.comm_, [&] {
    diff = a;
    copy = a;
  });
  double local[2] = {0.0, 0.0}, global[2] = {0.0, 0.0};
  without_agreement(g.comm_, [&] {
    add('T', -1.0, a, 1.0, diff);  // A − Aᵀ
    if (a.local_rows() > 0 && a.local_cols() > 0) {
      local[0] = a.local.topRows(a.local_rows()).cwiseAbs().maxCoeff();
      local[1] = diff.local.topRows(a.local_rows()).cwiseAbs().maxCoeff();
    }
    MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_MAX, g.comm_);
  });
  collectively(g.comm_, [&] {
    if (global[1] > rtol * global[0])  // the same verdict on every rank: the values are reduced
      throw std::invalid_argument(std::string(name) + ": not symmetric, max |A - A^T| = " + detail::value_text(global[1]) +
                                  " with max |A| = " + detail::value_text(global[0]) +
                                  ", expected at most symmetry_rtol * max |A| = " + detail::value_text(rtol * global[0]));
  });
  without_agreement(g.comm_, [&] { add('T', 0.5, copy, 0.5, a); });
}

}  // namespace

bool DistributedSolveOptions::IsValid(std::string* error) const {
  if (!flow.IsValid(error)) return false;
  if (block_size < 1) {
    if (error) *error = "block_size = " + std::to_string(block_size) + ": expected >= 1";
    return false;
  }
  if (error) error->clear();
  return true;
}

KernelBlockSource architecture_kernels(const Architecture& arch, const Inputs& a, const Inputs& b,
                                       const KernelOptions& options) {
  return [&arch, &a, &b, options](const std::vector<Index>& rows, const std::vector<Index>& cols, MatrixXd* ntk,
                                  MatrixXd* nngp) {
    Kernels k = kernels(arch, a.rows(rows), b.rows(cols), options);
    if (ntk) *ntk = std::move(k.ntk);
    if (nngp) *nngp = std::move(k.nngp);
  };
}

KernelBlockSource mapped_kernels(const MappedNpy* ntk, const MappedNpy* nngp, const std::string& ntk_name,
                                 const std::string& nngp_name) {
  for (const auto* f : {ntk, nngp})
    if (f && f->shape().size() != 2)
      throw std::invalid_argument("mapped_kernels: '" + f->path() + "' holds a " + std::to_string(f->shape().size()) +
                                  "-d array, expected a matrix");
  return [ntk, nngp, ntk_name, nngp_name](const std::vector<Index>& rows, const std::vector<Index>& cols, MatrixXd* t,
                                          MatrixXd* k) {
    // Runs of consecutive columns (block-cyclic: runs of one block): one read per row and run.
    std::vector<std::pair<std::size_t, std::size_t>> runs;  // (first position in cols, length)
    for (std::size_t j = 0; j < cols.size(); ++j)
      if (j > 0 && cols[j] == cols[j - 1] + 1)
        ++runs.back().second;
      else
        runs.emplace_back(j, 1);
    auto read = [&](const MappedNpy* file, const std::string& name, MatrixXd& out, const char* what) {
      if (!file) throw std::invalid_argument(std::string("mapped_kernels: the ") + what + " block was asked for, but no file was given");
      const std::size_t width = file->shape()[1];
      for (std::size_t i = 0; i < rows.size(); ++i)
        if (static_cast<std::size_t>(rows[i]) >= file->shape()[0])
          throw std::out_of_range("mapped_kernels: row " + std::to_string(rows[i]) + " beyond '" + file->path() + "'");
      if (!cols.empty() && static_cast<std::size_t>(cols.back()) >= width)
        throw std::out_of_range("mapped_kernels: column " + std::to_string(cols.back()) + " beyond '" + file->path() + "'");
      out.resize(static_cast<Index>(rows.size()), static_cast<Index>(cols.size()));
      std::vector<double> buffer;
      try {
        for (std::size_t i = 0; i < rows.size(); ++i)
          for (const auto& [at, length] : runs) {
            buffer.resize(length);
            file->read(static_cast<std::size_t>(rows[i]) * width + static_cast<std::size_t>(cols[at]), length, buffer.data());
            for (std::size_t c = 0; c < length; ++c) out(static_cast<Index>(i), static_cast<Index>(at + c)) = buffer[c];
          }
      } catch (const NpyError& e) {
        throw NpyError(name.empty() ? std::string(e.what()) : name + ": " + e.what());
      }
    };
    if (t) read(ntk, ntk_name, *t, "NTK");
    if (k) read(nngp, nngp_name, *k, "NNGP");
  };
}

DistributedPredictResult predict(MPI_Comm comm, const KernelProblem& problem, const MatrixXd& y_train,
                                 const DistributedPredictRequest& request, const DistributedSolveOptions& options) {
  collectively(comm, [&] {
    std::string error;
    if (!options.IsValid(&error)) throw std::invalid_argument("DistributedSolveOptions: " + error);
    if (problem.n_train < 1) throw std::invalid_argument("distributed predict: N = " + std::to_string(problem.n_train) + ", expected >= 1");
    if (problem.n_test < 1)
      throw std::invalid_argument("distributed predict: N_test = " + std::to_string(problem.n_test) + ", expected >= 1");
    if (y_train.rows() != problem.n_train || y_train.cols() < 1)
      throw std::invalid_argument("y_train: shape (" + std::to_string(y_train.rows()) + ", " + std::to_string(y_train.cols()) +
                                  "), expected (N, k) with N = " + std::to_string(problem.n_train) + " and k >= 1");
    for (Index i = 0; i < y_train.size(); ++i)
      if (!std::isfinite(y_train.data()[i])) throw std::invalid_argument("y_train: a non-finite entry, expected finite targets");
    for (double t : request.times)
      if (!(t >= 0.0)) throw std::invalid_argument("times: " + std::to_string(t) + ", expected t >= 0 (inf allowed)");
  });
  const SerialBlas serial;
  const Grid g(comm);
  const int nb = options.block_size;
  const Index n = problem.n_train, m = problem.n_test, k = y_train.cols();
  const bool flow = request.mean || request.covariance;
  const bool posterior = request.posterior_mean || request.posterior_covariance;
  const bool need_k = request.covariance || posterior;
  DistributedPredictResult out;
  out.process_rows = g.rows_;
  out.process_cols = g.cols_;

  // Kernel blocks, computed where they live.
  Distributed theta, kxx_train, theta_xt, k_xt, k_tt, y;
  collectively(comm, [&] {
    theta = Distributed(g, n, n, nb);
    if (need_k) kxx_train = Distributed(g, n, n, nb);
    fill(flow ? &theta : nullptr, need_k ? &kxx_train : nullptr, problem.train_train);
    if (request.mean || request.covariance || posterior) {
      theta_xt = Distributed(g, m, n, nb);
      if (need_k) k_xt = Distributed(g, m, n, nb);
      fill(flow ? &theta_xt : nullptr, need_k ? &k_xt : nullptr, problem.test_train);
    }
    if (request.covariance || request.posterior_covariance) {
      k_tt = Distributed(g, m, m, nb);
      fill(nullptr, &k_tt, problem.test_test);
    }
    y = Distributed(g, n, k, nb);
    set_from(y, y_train);
  });
  // Kernel blocks computed (or read) independently need not mirror each other bit for bit; the
  // single-process solver symmetrizes the same three matrices.
  const double rtol = options.flow.symmetry_rtol;
  if (flow) symmetrize(g, theta, "ntk_train_train", rtol);
  if (need_k) symmetrize(g, kxx_train, "nngp_train_train", rtol);
  if (request.covariance || request.posterior_covariance) symmetrize(g, k_tt, "nngp_test_test", rtol);

  const int N = static_cast<int>(n), M = static_cast<int>(m), K = static_cast<int>(k);
  if (flow) {
    const Spectrum s = decompose(g, theta, options.flow);
    out.flow_summary = s.summary;
    // PBLAS products and gathers: every rank in every call, so no agreement in between (an
    // allocation that fails here ends the job through without_agreement).
    without_agreement(comm, [&] {
      injected_bad_alloc(comm, "products");
      const int r = static_cast<int>(s.summary.rank);
      const double scale = options.flow.learning_rate / (static_cast<double>(n) * static_cast<double>(k));
      auto g_of = [&](double t) {
        VectorXd v(r);
        for (int i = 0; i < r; ++i) v(i) = spectral_filter(s.kept(i), scale * t);
        return v;
      };
      if (r == 0) {  // nothing is kept: the mean stays at 0, the covariance at its prior K(x,x)
        MatrixXd prior;
        if (request.covariance) prior = gather(k_tt, comm, g.rank_);
        for (std::size_t i = 0; i < request.times.size(); ++i) {
          if (request.mean && g.rank_ == 0) out.mean.push_back(MatrixXd::Zero(m, k));
          if (request.covariance && g.rank_ == 0) out.covariance.push_back(prior);
        }
      } else {
        Distributed yp(g, r, k, nb), p(g, m, r, nb);
        gemm('T', 'N', r, K, N, 1.0, s.vectors, s.first_kept, y, 1, 0.0, yp);       // V_Rᵀ·Y
        gemm('N', 'N', M, r, N, 1.0, theta_xt, 1, s.vectors, s.first_kept, 0.0, p);  // Θ(x,X)·V_R
        Distributed c, kxv;
        if (request.covariance) {
          Distributed kv(g, n, r, nb);
          c = Distributed(g, r, r, nb);
          gemm('N', 'N', N, r, N, 1.0, kxx_train, 1, s.vectors, s.first_kept, 0.0, kv);  // K·V_R
          gemm('T', 'N', r, r, N, 1.0, s.vectors, s.first_kept, kv, 1, 0.0, c);           // V_Rᵀ·K·V_R
          Distributed ct = c;
          add('T', 0.5, ct, 0.5, c);  // exactly symmetric: ½(C + Cᵀ)
          kxv = Distributed(g, m, r, nb);
          gemm('N', 'N', M, r, N, 1.0, k_xt, 1, s.vectors, s.first_kept, 0.0, kxv);  // K(x,X)·V_R
        }
        for (double t : request.times) {
          const VectorXd gt = g_of(t);
          if (request.mean) {
            Distributed gy = yp, mu(g, m, k, nb);
            scale_rows(gy, [&](Index i) { return gt(i); });
            gemm('N', 'N', M, K, r, 1.0, p, 1, gy, 1, 0.0, mu);
            MatrixXd full = gather(mu, comm, g.rank_);
            if (g.rank_ == 0) out.mean.push_back(std::move(full));
          }
          if (request.covariance) {
            // Σ = K_xx + W·Aᵀ + (W·Aᵀ)ᵀ, A = Θ(x,X)V_R·g_t, W = ½A·C − K(x,X)V_R (as GradientFlow).
            Distributed a = p;
            scale_columns(a, [&](Index j) { return gt(j); });
            Distributed w = kxv, wa(g, m, m, nb);
            gemm('N', 'N', M, r, r, 0.5, a, 1, c, 1, -1.0, w);
            gemm('N', 'T', M, M, r, 1.0, w, 1, a, 1, 0.0, wa);
            Distributed sum = wa;
            add('T', 1.0, wa, 1.0, sum);  // WA + (WA)ᵀ: bitwise symmetric
            sum.local += k_tt.local;
            MatrixXd full = gather(sum, comm, g.rank_);
            if (g.rank_ == 0) out.covariance.push_back(std::move(full));
          }
        }
      }
    });
  }
  if (posterior) {
    const Spectrum s = decompose(g, kxx_train, options.flow);
    out.posterior_summary = s.summary;
    without_agreement(comm, [&] {
      const int r = static_cast<int>(s.summary.rank);
      if (r == 0) {
        if (request.posterior_mean && g.rank_ == 0) out.posterior_mean = MatrixXd::Zero(m, k);
        if (request.posterior_covariance) out.posterior_covariance = gather(k_tt, comm, g.rank_);
      } else {
        Distributed b(g, m, r, nb);
        gemm('N', 'N', M, r, N, 1.0, k_xt, 1, s.vectors, s.first_kept, 0.0, b);  // K(x,X)·V_R
        if (request.posterior_mean) {
          Distributed alpha(g, r, k, nb), mu(g, m, k, nb);
          gemm('T', 'N', r, K, N, 1.0, s.vectors, s.first_kept, y, 1, 0.0, alpha);  // V_Rᵀ·Y
          scale_rows(alpha, [&](Index i) { return 1.0 / s.kept(i); });               // Λ_R⁻¹·V_RᵀY
          gemm('N', 'N', M, K, r, 1.0, b, 1, alpha, 1, 0.0, mu);
          out.posterior_mean = gather(mu, comm, g.rank_);
        }
        if (request.posterior_covariance) {
          // K(x,x) − ½(BBᵀ + (BBᵀ)ᵀ), B = K(x,X)V_RΛ_R^{−1/2} (as NngpPosterior).
          scale_columns(b, [&](Index j) { return 1.0 / std::sqrt(s.kept(j)); });
          Distributed bb(g, m, m, nb);
          gemm('N', 'T', M, M, r, 1.0, b, 1, b, 1, 0.0, bb);
          Distributed sym = bb;
          add('T', 0.5, bb, 0.5, sym);
          sym.local = k_tt.local - sym.local;
          out.posterior_covariance = gather(sym, comm, g.rank_);
        }
      }
    });
  }
  return out;
}

}  // namespace emergent::distributed
