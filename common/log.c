/* log — JSON-lines logger. Whole lines per write(2) (one, or a few held together)
 * so lines from several processes sharing the supervisor's stderr never interleave
 * mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char s_process [32] = "dossier";
static int s_level = LOG_LEVEL_INFO;

/* The W3C trace id of what this thread works on (log_set_trace), "" for none. */
static _Thread_local char s_trace [33];

void
log_set_trace (const char *trace_id)
{
    snprintf (s_trace, sizeof s_trace, "%s", trace_id ? trace_id : "");
}

/* Lines held by this thread (log_hold). */
static _Thread_local int s_holding;
static _Thread_local char s_held [LOG_HOLD_MAX];
static _Thread_local size_t s_held_size;

static void
s_write (const char *data, size_t size)
{
    if (write (STDERR_FILENO, data, size) < 0) {
        /* nowhere left to report a failed log write */
    }
}

void
log_flush (void)
{
    if (s_held_size)
        s_write (s_held, s_held_size);
    s_held_size = 0;
}

void
log_hold (int on)
{
    static int registered;
    if (on && !registered) {
        registered = 1;
        atexit (log_flush);
    }
    if (!on)
        log_flush ();
    s_holding = on;
}

void
log_init (const char *process, const char *level)
{
    if (process)
        snprintf (s_process, sizeof s_process, "%s", process);
    if (level) {
        if (strcasecmp (level, "debug") == 0)
            s_level = LOG_LEVEL_DEBUG;
        else
        if (strcasecmp (level, "warn") == 0 || strcasecmp (level, "warning") == 0)
            s_level = LOG_LEVEL_WARN;
        else
        if (strcasecmp (level, "error") == 0)
            s_level = LOG_LEVEL_ERROR;
        else
            s_level = LOG_LEVEL_INFO;
    }
}

int
log_level (void)
{
    return s_level;
}

/* Appends s to buf as the inside of a JSON string, escaping what JSON requires
 * and replacing control bytes; returns the new length (never past cap - 1). */
static size_t
s_escape (char *buf, size_t len, size_t cap, const char *s)
{
    for (; s && *s && len + 7 < cap; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\') {
            buf [len++] = '\\';
            buf [len++] = (char) c;
        }
        else
        if (c < 0x20)
            len += (size_t) snprintf (buf + len, cap - len, "\\u%04x", c);
        else
            buf [len++] = (char) c;
    }
    buf [len] = 0;
    return len;
}

void
log_emit (int level, const char *correlation_id, const char *case_id, const char *fmt, ...)
{
    if (level < s_level)
        return;
    static const char *names [] = { "debug", "info", "warn", "error" };
    char message [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);

    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char line [2048];
    size_t len = (size_t) snprintf (line, sizeof line,
        "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"process\":\"%s\",\"pid\":%d,\"msg\":\"",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        (int) (tv.tv_usec / 1000), names [level < 0 || level > 3 ? 1 : level], s_process, (int) getpid ());
    len = s_escape (line, len, sizeof line - 96, message);
    if (correlation_id && *correlation_id) {
        len += (size_t) snprintf (line + len, sizeof line - len, "\",\"correlation_id\":\"");
        len = s_escape (line, len, sizeof line - 64, correlation_id);
    }
    if (case_id && *case_id) {
        len += (size_t) snprintf (line + len, sizeof line - len, "\",\"case_id\":\"");
        len = s_escape (line, len, sizeof line - 56, case_id);
    }
    if (s_trace [0])        /* 32 lowercase hex digits: nothing to escape */
        len += (size_t) snprintf (line + len, sizeof line - len, "\",\"trace_id\":\"%s", s_trace);
    len += (size_t) snprintf (line + len, sizeof line - len, "\"}\n");
    if (s_holding && level < LOG_LEVEL_WARN && len <= sizeof s_held) {
        if (s_held_size + len > sizeof s_held)
            log_flush ();
        memcpy (s_held + s_held_size, line, len);
        s_held_size += len;
        return;
    }
    log_flush ();
    s_write (line, len);
}
