/* restart_policy — the supervisor's restart arithmetic, kept pure (no clock, no
 * processes) so it can be unit-tested: how long to wait before restarting a child,
 * and when too many restarts within a window mean "give up" (OTP's intensity). */
#ifndef DOSSIER_RESTART_POLICY_H
#define DOSSIER_RESTART_POLICY_H

#include <stdint.h>

/* Restarts remembered per process; intensity is capped below this. */
#define RESTART_POLICY_HISTORY_MAX 64

enum { RESTART_POLICY_RESTART = 0, RESTART_POLICY_GIVE_UP = 1 };

typedef struct {
    int64_t backoff_ms;         /* delay before the first restart in a window */
    int64_t backoff_max_ms;     /* ceiling of the doubling delay */
    int intensity;              /* restarts allowed within period_ms */
    int64_t period_ms;          /* the sliding window */
} restart_policy_t;

/* Times (ms, any monotonic clock) of the restarts still inside the window, oldest first. */
typedef struct {
    int64_t times [RESTART_POLICY_HISTORY_MAX];
    int count;
} restart_history_t;

/* The defaults of config/dossier.cfg: 100 ms doubling to 5 s, 5 restarts in 30 s. */
void restart_policy_defaults (restart_policy_t *policy);

/* Brings every field into a usable range (negative delays, a ceiling under the
 * first delay, a zero period, an intensity over the history cap).
 * Returns 0 if nothing had to change, -2 if something was clamped. */
int restart_policy_normalise (restart_policy_t *policy);

/* Delay before the n-th restart within the window (n >= 1): backoff_ms doubled
 * n-1 times, never above backoff_max_ms. */
int64_t restart_policy_backoff (const restart_policy_t *policy, int n);

/* Forgets restarts that left the window ending at now_ms. */
void restart_history_expire (restart_history_t *history, const restart_policy_t *policy, int64_t now_ms);

/* Number of restarts inside the window ending at now_ms (expires old ones first). */
int restart_history_count (restart_history_t *history, const restart_policy_t *policy, int64_t now_ms);

/* A child died at now_ms: records one more restart in its history and decides.
 * Returns RESTART_POLICY_RESTART with *delay_ms set to the backoff, or
 * RESTART_POLICY_GIVE_UP when the window now holds more than intensity restarts.
 * *count_p (may be NULL) gets the number of restarts in the window, this one included. */
int restart_policy_decide (const restart_policy_t *policy, restart_history_t *history,
                           int64_t now_ms, int64_t *delay_ms, int *count_p);

#endif
