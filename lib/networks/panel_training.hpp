// Gradient descent on a private panel-major copy of a network's large dense weights.
//
// Network keeps a dense layer's weights (n_out × n_in) row-major inside parameters() (the layout
// its header documents). The one-pass descent step visits them by 32-column panels, and the 32
// columns of a row-major matrix are n_out segments of 256 bytes on n_out different pages, which
// no hardware prefetcher follows. PanelTraining holds, for as long as it lives, those layers'
// weights in panels (each 32-column panel contiguous; network.cpp, pack_panels) and runs the
// steps on them, with the same sums in the same order as the row-major step (the same bits).
// While it trains, the network's parameters() hold the weights of before; sync() (and the
// destructor) copies the trained weights back.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "emergent/core/inputs.hpp"
#include "emergent/networks/network.hpp"

namespace emergent::detail {

class PanelTraining {
 public:
  /// Packs the layers that take the one-pass descent step on batches of `batch` examples
  /// (dense/activation chains, batch a multiple of 8, fan-ins multiples of 8, not the first
  /// affine layer). Nothing to pack: active() is false and the steps are the network's own.
  PanelTraining(Network& net, Eigen::Index batch);
  ~PanelTraining();
  PanelTraining(const PanelTraining&) = delete;
  PanelTraining& operator=(const PanelTraining&) = delete;

  bool active() const { return !storage_.empty(); }

  /// Network::descent_step / mse_descent_step on the panels (same checks, same result), on
  /// batches of the constructor's size (else std::invalid_argument).
  double descent_step(const Inputs& x, double learning_rate, const Network::LossFunction& loss);
  double mse_descent_step(const Inputs& x, const RowMatrix& targets, double learning_rate);

  /// Copies the panels into the network's parameters() (they remain the training copy).
  void sync();

 private:
  /// Packs parameters() into the panels (to_panels) or unpacks them back; then synced_.
  void copy(bool to_panels);
  static std::vector<double, Eigen::aligned_allocator<double>>& spare_storage();

  Network& net_;
  Eigen::Index batch_;
  std::vector<double*> panels_;  ///< per parameter block: its panels in storage_, or null
  std::vector<double, Eigen::aligned_allocator<double>> storage_;
  bool synced_ = true;  ///< parameters() hold the panels' weights
};

}  // namespace emergent::detail
