/* broker_inflight — commands sent to a handler and not yet answered, and the
 * partition pins they imply: while a key has a command in flight, its next
 * commands go to the same handler. Holds a copy of each for re-dispatch. */
#ifndef DOSSIER_BROKER_INFLIGHT_H
#define DOSSIER_BROKER_INFLIGHT_H

#include "broker_command.h"

#include <stddef.h>
#include <stdint.h>

typedef struct _broker_inflight_t broker_inflight_t;

/* Returns NULL on failure. Caller owns. */
broker_inflight_t *broker_inflight_new (void);
void broker_inflight_destroy (broker_inflight_t **self_p);
size_t broker_inflight_size (broker_inflight_t *self);

/* The handler partition is pinned to (borrowed), or NULL when none of its
 * commands is in flight. */
const broker_id_t *broker_inflight_pinned (broker_inflight_t *self, const char *partition);

/* Records the command as in flight on (*command_p)->worker since now_ms, taking
 * it. If this client already has this command id in flight, the first copy
 * stays and the new one is destroyed. Returns the command now in flight
 * (borrowed; send its frame), or NULL when out of memory (command destroyed). */
broker_command_t *broker_inflight_add (broker_inflight_t *self, broker_command_t **command_p, int64_t now_ms);

/* Forgets (client, command_id) because its reply passed. Returns 0 when it was
 * in flight, -1 when not (a late or second reply). */
int broker_inflight_complete (broker_inflight_t *self, const broker_id_t *client, const char *command_id);

/* Takes every command in flight on worker, oldest dispatch first, unpinning
 * their partitions: the re-dispatch set when a handler dies. *commands_p is a
 * malloc'd array of count commands; caller owns array and commands. Returns
 * count (0 with *commands_p NULL when none), or -1 out of memory (nothing taken). */
long broker_inflight_take_worker (broker_inflight_t *self, const broker_id_t *worker,
                                  broker_command_t ***commands_p);

/* Takes the oldest command dispatched before now_ms - max_age_ms, or NULL.
 * Caller owns. */
broker_command_t *broker_inflight_take_expired (broker_inflight_t *self, int64_t now_ms, int64_t max_age_ms);

#endif
