// The CLI's JSON writer (support/json.hpp).
#include "support/json.hpp"

#include <cmath>
#include <iostream>

namespace emergent::cli {

Json json_time(double t) { return std::isinf(t) && t > 0 ? Json("inf") : Json(t); }

Json json_times(const std::vector<double>& times) {
  Json a = Json::array();
  for (double t : times) a.push_back(json_time(t));
  return a;
}

Json json_numbers(const Eigen::VectorXd& v) {
  Json a = Json::array();
  for (Eigen::Index i = 0; i < v.size(); ++i) a.push_back(v(i));
  return a;
}

std::string json_text(const Json& document) {
  return document.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

void print_json(const Json& document) { std::cout << json_text(document) << std::endl; }

}  // namespace emergent::cli
