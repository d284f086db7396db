// describe_failure: every exception type that can reach an API boundary, mapped to a kind and to
// one line in our words (dependency text quoted in parentheses, so nothing is lost for a report).
#include "emergent/core/errors.hpp"

#include <boost/math/policies/error_handling.hpp>
#include <filesystem>
#include <ios>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "emergent/core/cancellation.hpp"

namespace emergent {

namespace {

std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

Failure make(FailureKind kind, std::string message) { return {kind, one_line(std::move(message))}; }

// "ours (dependency: its text)"
Failure quoted(FailureKind kind, const std::string& ours, const char* source, const std::exception& e) {
  return make(kind, ours + " (" + source + ": " + e.what() + ")");
}

// Boost.Math reports through std exceptions too (a root finder that cannot bracket its root
// throws std::domain_error): its messages start "Error in function boost::math::...".
bool from_boost_math(const std::exception& e) { return std::string(e.what()).find("boost::math") != std::string::npos; }

const char* kBoostRoutine = "a numerical routine (root finder or special function) did not succeed";

}  // namespace

Failure describe_failure(const std::exception_ptr& error) noexcept {
  if (!error) return make(FailureKind::Internal, "internal error: no exception to describe");
  try {
    try {
      std::rethrow_exception(error);
    } catch (const Cancelled& e) {
      return make(FailureKind::Cancelled, e.what());
    } catch (const NumericalError& e) {
      return make(FailureKind::Numerical, e.what());
    } catch (const std::invalid_argument& e) {  // ours: SpecError, NpyError, MemoryCapError, bad()
      return make(FailureKind::BadInput, e.what());
    } catch (const std::bad_array_new_length& e) {
      return quoted(FailureKind::OutOfMemory, "a size computed from the input is too large to allocate", "std", e);
    } catch (const std::bad_alloc&) {
      return make(FailureKind::OutOfMemory,
                  "out of memory (a smaller memory cap, fewer inputs or narrower layers may help)");
    } catch (const std::length_error& e) {
      return quoted(FailureKind::BadInput, "a size computed from the input exceeds what this machine can allocate",
                    "std::length_error", e);
    } catch (const nlohmann::json::parse_error& e) {
      return quoted(FailureKind::BadInput, "malformed JSON", "nlohmann::json", e);
    } catch (const nlohmann::json::exception& e) {
      return quoted(FailureKind::BadInput, "JSON content of an unexpected type or shape", "nlohmann::json", e);
    } catch (const boost::math::evaluation_error& e) {
      return quoted(FailureKind::Numerical, kBoostRoutine, "Boost.Math", e);
    } catch (const boost::math::rounding_error& e) {
      return quoted(FailureKind::Numerical, "a value could not be rounded to an integer", "Boost.Math", e);
    } catch (const std::domain_error& e) {
      if (from_boost_math(e)) return quoted(FailureKind::Numerical, kBoostRoutine, "Boost.Math", e);
      return quoted(FailureKind::Numerical, "a function was evaluated outside its domain", "std::domain_error", e);
    } catch (const std::overflow_error& e) {
      if (from_boost_math(e)) return quoted(FailureKind::Numerical, kBoostRoutine, "Boost.Math", e);
      return quoted(FailureKind::Numerical, "a value overflowed the range of float64", "std::overflow_error", e);
    } catch (const std::underflow_error& e) {
      if (from_boost_math(e)) return quoted(FailureKind::Numerical, kBoostRoutine, "Boost.Math", e);
      return quoted(FailureKind::Numerical, "a value underflowed the range of float64", "std::underflow_error", e);
    } catch (const std::range_error& e) {
      return quoted(FailureKind::Numerical, "a result is outside the representable range", "std::range_error", e);
    } catch (const std::out_of_range& e) {
      return quoted(FailureKind::Internal, "internal error: an index or number was out of range", "std::out_of_range", e);
    } catch (const std::filesystem::filesystem_error& e) {
      return quoted(FailureKind::Internal, "file system error", "std::filesystem", e);
    } catch (const std::ios_base::failure& e) {
      return quoted(FailureKind::Internal, "input/output error", "std::ios", e);
    } catch (const std::system_error& e) {
      return quoted(FailureKind::Internal, "system error", "std::system_error", e);
    } catch (const std::logic_error& e) {
      return quoted(FailureKind::Internal, "internal error", "std::logic_error", e);
    } catch (const std::exception& e) {  // std::runtime_error of ours ("cannot write ...") and the rest
      return make(FailureKind::Internal, e.what());
    } catch (...) {
      return make(FailureKind::Internal, "unknown internal error (an exception that is not a std::exception)");
    }
  } catch (...) {  // building a message failed (e.g. out of memory while concatenating)
    return {FailureKind::OutOfMemory, "out of memory"};
  }
}

}  // namespace emergent
