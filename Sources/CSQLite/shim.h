#ifndef EDGEBUF_CSQLITE_SHIM_H
#define EDGEBUF_CSQLITE_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a pointer cast ((sqlite3_destructor_type)-1) that Swift cannot import.
// Binding text/blobs with it makes SQLite copy the bytes before sqlite3_bind_* returns, so
// the Swift buffer may go away right after the call.
static inline sqlite3_destructor_type csqlite_transient(void) {
    return SQLITE_TRANSIENT;
}

#endif
