// Names of SpectralStatus (include/emergent/dynamics/gradient_flow.hpp).
#include "emergent/dynamics/gradient_flow.hpp"

#include "detail/enum_names.hpp"

namespace emergent {
constexpr detail::EnumNames<SpectralStatus, 5> kSpectralStatusNames = {{
    {SpectralStatus::Ok, "ok"},
    {SpectralStatus::RankDeficient, "rank_deficient"},
    {SpectralStatus::IllConditioned, "ill_conditioned"},
    {SpectralStatus::ZeroKernel, "zero_kernel"},
    {SpectralStatus::NotPositiveSemidefinite, "not_positive_semidefinite"},
}};

const char* to_string(SpectralStatus value) { return detail::enum_name(kSpectralStatusNames, value); }

SpectralStatus parse_spectral_status(std::string_view text) { return detail::parse_enum(kSpectralStatusNames, text, "parse_spectral_status", "SpectralStatus"); }

}  // namespace emergent
