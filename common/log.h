/* log — one JSON object per line on stderr: time, level, process, message and the
 * correlation ids. Personal data (names, birth dates) never goes in at info level:
 * pass ids, not records. */
#ifndef DOSSIER_LOG_H
#define DOSSIER_LOG_H

enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the process name (e.g. "store") and level ("debug", "info", "warn", "error"). */
void log_init (const char *process, const char *level);
int  log_level (void);

/* Writes one line when level is enabled. correlation_id and case_id may be NULL. */
void log_emit (int level, const char *correlation_id, const char *case_id, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* Holding: a thread that logs a line per message (the handler, one per command)
 * may hold its info and debug lines and write them together: log_flush writes what
 * is held, at most LOG_HOLD_MAX bytes per write(2) (a pipe keeps such a write whole,
 * so lines still never interleave mid-line), and a line that would not fit flushes
 * first. warn and error lines go out at once, after what was held. For the calling
 * thread only; on also makes the process flush at exit. */
#define LOG_HOLD_MAX 4096

/* Every line this thread logs from now on carries "trace_id": trace_id (a W3C
 * trace id, 32 lowercase hex digits), so one record can be followed across
 * processes; NULL or "" stops it. */
void log_set_trace (const char *trace_id);
void log_hold (int on);
void log_flush (void);

#define log_debug(corr, case_id, ...) log_emit (LOG_LEVEL_DEBUG, corr, case_id, __VA_ARGS__)
#define log_info(corr, case_id, ...)  log_emit (LOG_LEVEL_INFO, corr, case_id, __VA_ARGS__)
#define log_warn(corr, case_id, ...)  log_emit (LOG_LEVEL_WARN, corr, case_id, __VA_ARGS__)
#define log_error(corr, case_id, ...) log_emit (LOG_LEVEL_ERROR, corr, case_id, __VA_ARGS__)

#endif
