// Shared check of a public enum's name pair: to_string(E) and parse_<name>(text) are inverse on
// every value, every name is snake_case and distinct, and an unknown name throws
// std::invalid_argument that quotes it and lists every allowed name.
#pragma once

#include <doctest/doctest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace emergent::test {

inline bool is_snake_case(const std::string& s) {
  if (s.empty() || s.front() == '_' || s.back() == '_') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return s.find("__") == std::string::npos;
}

template <class E, class Parse>
void check_enum_names(const std::vector<E>& values, Parse parse) {
  std::set<std::string> seen;
  for (E e : values) {
    const std::string name = to_string(e);
    CAPTURE(name);
    CHECK(is_snake_case(name));
    CHECK(seen.insert(name).second);
    CHECK(parse(name) == e);
  }
  for (const std::string bad : {"", "no such value", "Ok_", "UNKNOWN"}) {
    CAPTURE(bad);
    if (seen.count(bad)) continue;
    CHECK_THROWS_AS(parse(bad), std::invalid_argument);
  }
  try {
    parse("no_such_value");
    FAIL("parse accepted no_such_value");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK(what.find("'no_such_value'") != std::string::npos);
    for (const auto& name : seen) CHECK(what.find(name) != std::string::npos);
  }
}

}  // namespace emergent::test
