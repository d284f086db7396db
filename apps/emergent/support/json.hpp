// The one JSON writer of the CLI: every --json output is an nlohmann::ordered_json document
// (keys in the order they are set, strings escaped by the library) printed by print_json.
#pragma once

#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace emergent::cli {

using Json = nlohmann::ordered_json;

/// A training time: the number, or the string "inf" for t = ∞ (JSON has no infinity;
/// docs/conventions.md §5). Other non-finite numbers are written as null by the library.
Json json_time(double t);
Json json_times(const std::vector<double>& times);
Json json_numbers(const Eigen::VectorXd& v);

/// The document on one line (invalid UTF-8 in a string is replaced, never a throw).
std::string json_text(const Json& document);
/// json_text(document) and a newline on stdout.
void print_json(const Json& document);

}  // namespace emergent::cli
