// Reading a file named by a user or a model, as every reader here does: only a regular file (a
// named pipe, a device such as /dev/zero, a socket or a folder is refused before anything is
// read, and opening a pipe cannot block), and never more than the size it had when opened.
// Header-only, so the runtime uses it as the compiler does.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace gemma {

// A descriptor for reading `path`, or -1 with the reason in `why`; `size` gets the file's bytes.
inline int openRegularFile(const std::string& path, uint64_t& size, std::string& why) {
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    why = std::string("cannot be opened: ") + std::strerror(errno);
    return -1;
  }
  struct stat info;
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    why = "is not a regular file";
    return -1;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0)
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  size = static_cast<uint64_t>(info.st_size);
  return fd;
}

// Reads bytes [offset, offset + count) of `fd` into `dest`, retrying interrupted and short reads.
// Returns how many bytes it read: fewer than `count` when the file ended early (errno 0) or a
// read failed (errno set).
inline size_t readFully(int fd, uint8_t* dest, size_t count, uint64_t offset) {
  size_t done = 0;
  errno = 0;
  while (done < count) {
    ssize_t got = ::pread(fd, dest + done, count - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    done += static_cast<size_t>(got);
  }
  return done;
}

// The whole of a regular file of at most `maxBytes` bytes, or false with the reason in `why`.
inline bool readRegularFile(const std::string& path, uint64_t maxBytes, std::string& contents,
                            std::string& why) {
  uint64_t size = 0;
  int fd = openRegularFile(path, size, why);
  if (fd < 0)
    return false;
  if (size > maxBytes) {
    ::close(fd);
    why = "has " + std::to_string(size) + " bytes, more than the " + std::to_string(maxBytes) +
          " such a file may have";
    return false;
  }
  contents.assign(static_cast<size_t>(size), '\0');
  bool whole = readFully(fd, reinterpret_cast<uint8_t*>(contents.data()), contents.size(), 0) ==
               contents.size();
  if (!whole)
    why = errno ? std::string("cannot be read: ") + std::strerror(errno)
                : std::string("is shorter than its size (it changed while read)");
  ::close(fd);
  return whole;
}

} // namespace gemma
