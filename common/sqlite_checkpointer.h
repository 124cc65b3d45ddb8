/* sqlite_checkpointer — moves the WAL checkpoints of one SQLite writer onto a thread
 * with its own connection, so that a commit never waits behind the copy of the WAL
 * into the database file (and its fsync). Used by the store and the projector. */
#ifndef DOSSIER_SQLITE_CHECKPOINTER_H
#define DOSSIER_SQLITE_CHECKPOINTER_H

#include <sqlite3.h>

typedef struct sqlite_checkpointer_t sqlite_checkpointer_t;

/* Starts checkpointing for writer (a connection in WAL mode on the file at path):
 * after a commit that leaves at least wake_frames frames in the WAL the thread runs
 * a PASSIVE checkpoint; at inline_frames (the thread has fallen behind) the commit
 * checkpoints itself. Replaces SQLite's automatic checkpoint on writer. Returns the
 * checkpointer (the caller owns it and destroys it before closing writer), or NULL
 * if it could not start: SQLite's own checkpoints then stay on. */
sqlite_checkpointer_t *sqlite_checkpointer_new (sqlite3 *writer, const char *path,
                                                int wake_frames, int inline_frames);

/* Stops the thread, closes its connection, gives the writer back SQLite's automatic
 * checkpoint, and sets *self_p to NULL. NULL is fine. */
void sqlite_checkpointer_destroy (sqlite_checkpointer_t **self_p);

#endif
