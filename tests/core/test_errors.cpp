// describe_failure (emergent/core/errors.hpp): every exception a dependency really throws —
// provoked here through the dependency itself, not constructed by hand — gets a kind and one
// line in our words that still quotes the dependency's text; our own exceptions keep theirs.
#include <doctest/doctest.h>

#include <boost/math/special_functions/erf.hpp>
#include <boost/math/tools/roots.hpp>
#include <cmath>
#include <filesystem>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/cancellation.hpp"
#include "emergent/core/errors.hpp"
#include "emergent/data/ising.hpp"
#include "emergent/data/npy.hpp"

using namespace emergent;

namespace {

template <class F>
Failure failure_of(F&& f) {
  try {
    f();
  } catch (...) {
    return describe_failure(std::current_exception());
  }
  FAIL("expected an exception");
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool one_line(const std::string& text) { return text.find('\n') == std::string::npos && !text.empty(); }

}  // namespace

TEST_CASE("our own exceptions keep their message and kind") {
  const Failure spec = failure_of([] { (void)Architecture::parse("dense(0) relu"); });
  CHECK(spec.kind == FailureKind::BadInput);
  CHECK(contains(spec.message, "dense"));
  const Failure npy = failure_of([] { (void)parse_npy("not a numpy file", "x.npy"); });
  CHECK(npy.kind == FailureKind::BadInput);
  CHECK(contains(npy.message, "x.npy"));
  CHECK(describe_failure(std::make_exception_ptr(NumericalError("flow: no root"))).message == "flow: no root");
  CHECK(describe_failure(std::make_exception_ptr(NumericalError("x"))).kind == FailureKind::Numerical);
  CHECK(describe_failure(std::make_exception_ptr(Cancelled())).kind == FailureKind::Cancelled);
  CHECK(describe_failure(std::make_exception_ptr(std::runtime_error("cannot write out.npy"))).message ==
        "cannot write out.npy");
  CHECK(describe_failure(std::make_exception_ptr(42)).kind == FailureKind::Internal);
  CHECK(describe_failure(nullptr).kind == FailureKind::Internal);
}

TEST_CASE("std: allocation, sizes, indices, files") {
  const Failure len = failure_of([] {
    std::vector<double> v;
    v.reserve(v.max_size() + 1);
  });
  CHECK(len.kind == FailureKind::BadInput);
  CHECK(contains(len.message, "exceeds what this machine can allocate"));
  CHECK(contains(len.message, "std::length_error"));
  const Failure mem = failure_of([] {
    volatile std::size_t n = std::numeric_limits<std::size_t>::max() / 4;  // > the address space
    double* p = new double[n];
    delete[] p;
  });
  CHECK(mem.kind == FailureKind::OutOfMemory);
  CHECK(one_line(mem.message));
  CHECK(describe_failure(std::make_exception_ptr(std::bad_alloc())).message.rfind("out of memory", 0) == 0);
  const Failure idx = failure_of([] { (void)std::vector<int>(3).at(5); });
  CHECK(idx.kind == FailureKind::Internal);
  CHECK(contains(idx.message, "out of range"));
  const Failure file = failure_of([] { std::filesystem::rename("/nonexistent/a", "/nonexistent/b"); });
  CHECK(file.kind == FailureKind::Internal);
  CHECK(contains(file.message, "file system error"));
  CHECK(contains(file.message, "/nonexistent/a"));
}

TEST_CASE("Boost.Math: a root finder that cannot bracket, a quantile outside its domain") {
  const Failure root = failure_of([] {
    std::uintmax_t iterations = 50;
    (void)boost::math::tools::toms748_solve([](double x) { return x * x + 1.0; }, 0.0, 1.0,
                                            boost::math::tools::eps_tolerance<double>(40), iterations);
  });
  CHECK(root.kind == FailureKind::Numerical);
  CHECK(contains(root.message, "did not succeed"));
  CHECK(contains(root.message, "Boost.Math"));
  CHECK(contains(root.message, "bracket"));
  const Failure domain = failure_of([] { (void)boost::math::erfc_inv(3.0); });
  CHECK(domain.kind == FailureKind::Numerical);
  CHECK(contains(domain.message, "erfc_inv"));
  const Failure std_domain = failure_of([] { throw std::domain_error("acosh of 0.5"); });
  CHECK(contains(std_domain.message, "outside its domain"));
  CHECK(one_line(domain.message));
}

TEST_CASE("nlohmann::json: malformed text and content of the wrong type") {
  const Failure parse = failure_of([] { const auto j = nlohmann::json::parse("{\"data\": [1, 2");
    (void)j; });
  CHECK(parse.kind == FailureKind::BadInput);
  CHECK(contains(parse.message, "malformed JSON"));
  const Failure type = failure_of([] { (void)nlohmann::json::parse("[1]").at("data"); });
  CHECK(type.kind == FailureKind::BadInput);
  CHECK(contains(type.message, "nlohmann::json"));
}

TEST_CASE("library entry points: a dependency's failure on user input is ours or avoided") {
  // T → 0: κ = 2 sinh(2β)/cosh²(2β) used to be inf/inf = NaN, and Boost's K(κ) threw a domain
  // error; the energy per site tends to the ground state −2.
  for (double t : {1e-3, 1e-100, 1e-300}) {
    const double e = onsager_energy_per_site(t);
    CHECK(std::isfinite(e));
    CHECK(e == doctest::Approx(-2.0).epsilon(1e-15));
  }
}
