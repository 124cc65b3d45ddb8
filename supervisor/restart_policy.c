/* restart_policy — exponential backoff and the intensity window (see restart_policy.h).
 * The backoff grows with the number of restarts still inside the window, so a child
 * that has been stable for a whole period starts again from the shortest delay. */
#include "restart_policy.h"

#include <string.h>

void
restart_policy_defaults (restart_policy_t *policy)
{
    policy->backoff_ms = 100;
    policy->backoff_max_ms = 5000;
    policy->intensity = 5;
    policy->period_ms = 30000;
}

int
restart_policy_normalise (restart_policy_t *policy)
{
    int rc = 0;
    if (policy->backoff_ms < 0) {
        policy->backoff_ms = 0;
        rc = -2;
    }
    if (policy->backoff_max_ms < policy->backoff_ms) {
        policy->backoff_max_ms = policy->backoff_ms;
        rc = -2;
    }
    if (policy->intensity < 0) {
        policy->intensity = 0;
        rc = -2;
    }
    /* One slot is needed for the restart that tips the count over intensity. */
    if (policy->intensity > RESTART_POLICY_HISTORY_MAX - 1) {
        policy->intensity = RESTART_POLICY_HISTORY_MAX - 1;
        rc = -2;
    }
    if (policy->period_ms <= 0) {
        policy->period_ms = 1;
        rc = -2;
    }
    return rc;
}

int64_t
restart_policy_backoff (const restart_policy_t *policy, int n)
{
    int64_t delay = policy->backoff_ms;
    /* Stop doubling at the ceiling: also keeps the shift from overflowing. */
    for (int i = 1; i < n && delay < policy->backoff_max_ms; i++)
        delay = delay > 0 ? delay * 2 : 0;
    return delay > policy->backoff_max_ms ? policy->backoff_max_ms : delay;
}

void
restart_history_expire (restart_history_t *history, const restart_policy_t *policy, int64_t now_ms)
{
    int keep_from = 0;
    while (keep_from < history->count
       &&  history->times [keep_from] <= now_ms - policy->period_ms)
        keep_from++;
    if (keep_from > 0) {
        memmove (history->times, history->times + keep_from,
                 (size_t) (history->count - keep_from) * sizeof history->times [0]);
        history->count -= keep_from;
    }
}

int
restart_history_count (restart_history_t *history, const restart_policy_t *policy, int64_t now_ms)
{
    restart_history_expire (history, policy, now_ms);
    return history->count;
}

int
restart_policy_decide (const restart_policy_t *policy, restart_history_t *history,
                       int64_t now_ms, int64_t *delay_ms, int *count_p)
{
    restart_history_expire (history, policy, now_ms);
    if (history->count == RESTART_POLICY_HISTORY_MAX) {
        /* Only reachable with an un-normalised policy: drop the oldest. */
        memmove (history->times, history->times + 1,
                 (RESTART_POLICY_HISTORY_MAX - 1) * sizeof history->times [0]);
        history->count--;
    }
    history->times [history->count++] = now_ms;
    int count = history->count;
    if (count_p)
        *count_p = count;
    if (count > policy->intensity)
        return RESTART_POLICY_GIVE_UP;
    if (delay_ms)
        *delay_ms = restart_policy_backoff (policy, count);
    return RESTART_POLICY_RESTART;
}
