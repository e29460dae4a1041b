#ifndef EDGEBUF_CSQLITE_SHIM_H
#define EDGEBUF_CSQLITE_SHIM_H

#include <sqlite3.h>

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

#endif
