/* health — see health.h. The heartbeat is a lone atomic so that the main loop never
 * takes a lock for it; readiness changes rarely and keeps its reason under a mutex. */
#include "health.h"
#include "json_text.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_REASON_MAX 121

static atomic_llong s_beat_ms;          /* 0: no beat yet */
static atomic_bool s_started;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static bool s_ready = true;             /* the process's own word; true until it says otherwise */
static char s_reason [S_REASON_MAX];

/* COARSE: the vDSO answers without a system call, to the tick (~4 ms), plenty for
 * a limit counted in seconds. */
static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
health_beat (void)
{
    atomic_store_explicit (&s_beat_ms, s_now_ms (), memory_order_relaxed);
}

void
health_started (void)
{
    health_beat ();
    atomic_store (&s_started, true);
}

void
health_set_ready (bool ready, const char *reason)
{
    pthread_mutex_lock (&s_lock);
    s_ready = ready;
    snprintf (s_reason, sizeof s_reason, "%s", ready || !reason ? "" : reason);
    pthread_mutex_unlock (&s_lock);
}

/* Age of the heartbeat in ms; 0 before the first beat (a starting process is alive). */
static int64_t
s_beat_age (void)
{
    int64_t beat = atomic_load_explicit (&s_beat_ms, memory_order_relaxed);
    return beat ? s_now_ms () - beat : 0;
}

health_state_t
health_state (int64_t stall_ms)
{
    if (stall_ms > 0 && s_beat_age () > stall_ms)
        return HEALTH_STALLED;
    if (!atomic_load (&s_started))
        return HEALTH_STARTING;
    pthread_mutex_lock (&s_lock);
    bool ready = s_ready;
    pthread_mutex_unlock (&s_lock);
    return ready ? HEALTH_OK : HEALTH_NOT_READY;
}

const char *
health_state_name (health_state_t state)
{
    static const char *const names [HEALTH_STATES] = { "ok", "starting", "not_ready", "stalled" };
    return state < HEALTH_STATES ? names [state] : "unknown";
}

int
health_answer (bool want_ready, int64_t stall_ms, char *body, size_t size)
{
    health_state_t state = health_state (stall_ms);
    if (state == HEALTH_STALLED) {
        snprintf (body, size, "{\"status\":\"stalled\",\"reason\":\"main loop silent for %lld ms\"}",
                  (long long) s_beat_age ());
        return 503;
    }
    if (!want_ready || state == HEALTH_OK) {
        snprintf (body, size, "{\"status\":\"ok\"}");
        return 200;
    }
    if (state == HEALTH_STARTING) {
        snprintf (body, size, "{\"status\":\"starting\",\"reason\":\"not ready yet\"}");
        return 503;
    }
    char reason [S_REASON_MAX];
    pthread_mutex_lock (&s_lock);
    memcpy (reason, s_reason, sizeof reason);
    pthread_mutex_unlock (&s_lock);
    json_text_t text;
    json_text_init (&text);
    json_text_raw (&text, "{\"status\":\"not_ready\",\"reason\":", 31);
    const char *why = reason [0] ? reason : "not ready";
    json_text_string (&text, why, strlen (why));
    json_text_raw (&text, "}", 1);
    char *json = json_text_take (&text, NULL);
    snprintf (body, size, "%s", json ? json : "{\"status\":\"not_ready\"}");
    free (json);
    return 503;
}

void
health_reset (void)
{
    atomic_store (&s_beat_ms, 0);
    atomic_store (&s_started, false);
    health_set_ready (true, NULL);
}
