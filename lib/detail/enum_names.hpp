// Internal: one table per public enum, from which both to_string(E) and parse_<name>(text) are
// made, so that the two can never disagree. Every name is snake_case ("rank_deficient").
#pragma once

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace emergent::detail {

template <class E, std::size_t N>
using EnumNames = std::array<std::pair<E, const char*>, N>;

/// The name of e in table; "unknown" for a value outside the table (a cast integer).
template <class E, std::size_t N>
const char* enum_name(const EnumNames<E, N>& table, E e) {
  for (const auto& [value, name] : table)
    if (value == e) return name;
  return "unknown";
}

/// The value named text; throws std::invalid_argument naming the function, the text and every
/// allowed name.
template <class E, std::size_t N>
E parse_enum(const EnumNames<E, N>& table, std::string_view text, const char* function, const char* type) {
  for (const auto& [value, name] : table)
    if (text == name) return value;
  std::string allowed;
  for (const auto& entry : table) allowed += (allowed.empty() ? "" : ", ") + std::string(entry.second);
  throw std::invalid_argument(std::string(function) + ": '" + std::string(text) + "' is not a " + type +
                              "; expected one of " + allowed);
}

}  // namespace emergent::detail
