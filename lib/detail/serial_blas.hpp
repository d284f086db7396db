// Internal: OpenBLAS (OpenMP build) sizes each call by omp_get_max_threads(), and runs
// single-threaded inside an active parallel region. SerialBlas pins the calling task's count to 1
// for its scope — and so that of the threads of any parallel region opened inside it, which
// inherit the count — so a call gives the same bits whether or not it sits in one of our
// parallel loops, and whatever that loop's size.
#pragma once

#include <omp.h>

namespace emergent::detail {

class SerialBlas {
 public:
  SerialBlas() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SerialBlas() { omp_set_num_threads(saved_); }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int saved_;
};

}  // namespace emergent::detail
