/* notifier_tracker — which log positions an asynchronous sink still owes: positions
 * are added in increasing order as they are handed over, settled in any order as
 * delivery reports come back, and the lowest unsettled one bounds the checkpoint. */
#ifndef DOSSIER_NOTIFIER_TRACKER_H
#define DOSSIER_NOTIFIER_TRACKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct _notifier_tracker_t notifier_tracker_t;

/* An empty tracker. It grows as positions are added: the owner bounds how many it
 * keeps outstanding (backpressure), the tracker only stores them. Returns NULL on
 * failure. Caller owns; destroy with notifier_tracker_destroy (accepts NULL, nulls
 * the pointer). */
notifier_tracker_t *notifier_tracker_new (void);
void notifier_tracker_destroy (notifier_tracker_t **self_p);

/* Tracks position as unsettled. Returns 0, -1 out of memory (never after a
 * successful reserve covering it), -2 if position is not above every position added
 * before (positions come from the log in order). */
int notifier_tracker_add (notifier_tracker_t *self, int64_t position);

/* Makes room for n more adds, so that a batch can be checked before any of it is
 * taken. Returns 0, -1 out of memory. */
int notifier_tracker_reserve (notifier_tracker_t *self, size_t n);

/* Marks position settled (delivered or dead-lettered). O(log n). Returns 0, or -1 if
 * position is not tracked or was already settled. */
int notifier_tracker_settle (notifier_tracker_t *self, int64_t position);

/* The highest position P such that every tracked position <= P is settled, i.e. the
 * lowest unsettled position minus one; INT64_MAX when nothing is unsettled (the
 * caller bounds it by what it handed over). */
int64_t notifier_tracker_settled (notifier_tracker_t *self);

/* Positions added and not yet settled-and-released (settled ones above an
 * unsettled one still count: they hold a slot until everything below settles). */
size_t notifier_tracker_count (notifier_tracker_t *self);

#endif
