#ifndef EDGEBUF_CSQLITE_SHIM_H
#define EDGEBUF_CSQLITE_SHIM_H

#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

// SQLITE_TRANSIENT is a pointer cast ((sqlite3_destructor_type)-1) that Swift cannot import.
// Binding text/blobs with it makes SQLite copy the bytes before sqlite3_bind_* returns, so
// the Swift buffer may go away right after the call.
static inline sqlite3_destructor_type csqlite_transient(void) {
    return SQLITE_TRANSIENT;
}

// sqlite3_config is variadic, which Swift cannot call. Memory statistics take a global
// mutex on every SQLite allocation; edgebuf never reads them. Must run before
// sqlite3_initialize (it returns SQLITE_MISUSE afterwards, which is harmless).
static inline int csqlite_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

// The busy handler: SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25, 25,
// 25, 50, 50, then 100 ms between tries, so a writer waiting on another process's 20 ms
// commit sleeps on for up to 13 ms after the lock is free, and one waiting longer up to
// 100 ms; with a producer and the daemon writing at once the machine then sits idle (half
// the CPU time in the end-to-end benchmark). This one retries after 50 us, doubling to 1 ms,
// and gives up once the sum of its sleeps reaches the timeout, as SQLite's does.
static inline long long csqlite_busy_delay_us(int count) {
    return count < 5 ? 50LL << count : 1000LL;
}
static inline long long csqlite_busy_waited_us(int count) {
    return count < 5 ? 50LL * ((1LL << count) - 1) : 1550LL + (long long)(count - 5) * 1000LL;
}
static int csqlite_busy_poll(void *timeout_ms, int count) {
    long long limit = (long long)(intptr_t)timeout_ms * 1000LL;
    long long waited = csqlite_busy_waited_us(count);
    if (waited >= limit) return 0;
    long long delay = csqlite_busy_delay_us(count);
    if (waited + delay > limit) delay = limit - waited;
    usleep((useconds_t)delay);
    return 1;
}
static inline int csqlite_set_busy_timeout(sqlite3 *db, int milliseconds) {
    if (milliseconds <= 0) return sqlite3_busy_handler(db, 0, 0);
    return sqlite3_busy_handler(db, csqlite_busy_poll, (void *)(intptr_t)milliseconds);
}

#endif
