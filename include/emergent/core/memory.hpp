// Memory accounting: the cap under which big Gram matrices are computed in blocks.
#pragma once

#include <cstddef>
#include <string>

namespace emergent {

/// Physical memory of the machine in bytes (0 if it cannot be determined).
std::size_t physical_memory_bytes();

/// The default memory cap: 25% of physical memory (1 GiB if that is unknown).
std::size_t default_memory_cap_bytes();

/// Peak resident set size of this process so far, in bytes (0 if unknown).
std::size_t peak_rss_bytes();

/// Advice for a large buffer not touched yet: transparent huge pages on its 2 MiB-aligned part,
/// so that its first writes fault 2 MiB at a time instead of 4 KiB (a page fault costs about a
/// microsecond here: 18.8 MB of inputs copied into 4 KiB pages took 8.8 ms, into huge pages 4.8)
/// and strided reads miss the TLB less. Only advice: nothing changes where THP is off; buffers
/// under 8 MiB are left alone.
void prefer_huge_pages(void* data, std::size_t bytes);

/// "1.50 GiB", "312 MiB", "4.0 KiB" ...
std::string format_bytes(std::size_t bytes);

/// Parse "4G", "512M", "1.5GiB", "100000" (bytes) or "25%" (of physical memory).
/// Throws std::invalid_argument naming `what` on anything else.
std::size_t parse_bytes(const std::string& text, const std::string& what = "memory cap");

}  // namespace emergent
