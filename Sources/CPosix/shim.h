#ifndef EDGEBUF_CPOSIX_SHIM_H
#define EDGEBUF_CPOSIX_SHIM_H

#include <sys/ioctl.h>

// ioctl is variadic, which Swift cannot call. The number of bytes written to a pipe (or
// FIFO) that its reader has not read yet (Linux answers FIONREAD on either end), or -1.
static inline int cposix_unread_bytes(int fd) {
    int count = 0;
    return ioctl(fd, FIONREAD, &count) == 0 ? count : -1;
}

#endif
