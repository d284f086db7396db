// Positioned reads and writes for the kernel files (kernel_files.cpp and, under MPI, the shared
// writer in distributed/shared_kernel_files.cpp): whole buffers at an offset, retried on EINTR,
// failures thrown with the path and errno's text.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace emergent::cli {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] inline void io_error(const std::string& what, const std::string& path) {
  throw std::runtime_error(path + ": " + what + " (" + std::strerror(errno) + ")");
}

inline void pwrite_all(int fd, const void* data, std::size_t bytes, std::size_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error("write failed", path);
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::size_t>(n);
  }
}

// False if the file ends before `bytes` could be read.
inline bool pread_all(int fd, void* data, std::size_t bytes, std::size_t offset, const std::string& path) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error("read failed", path);
    }
    if (n == 0) return false;
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::size_t>(n);
  }
  return true;
}

inline std::string hex(std::uint64_t v) {
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(v));
  return buffer;
}

}  // namespace emergent::cli
