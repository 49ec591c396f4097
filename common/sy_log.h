/* common/sy_log.h - leveled logging to stderr, filtered before arguments are evaluated.
 *
 * Each .c file defines SY_LOG_MODULE (a short tag, e.g. "http") before including this
 * header. The level is a process-wide setting written once at start-up; log lines are
 * formatted into one buffer and written with a single write(2), so lines from different
 * threads never interleave. Safe from any thread.
 */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdbool.h>

enum sy_log_level {
    SY_LOG_DEBUG = 0,
    SY_LOG_INFO = 1,
    SY_LOG_WARN = 2,
    SY_LOG_ERROR = 3,
    SY_LOG_OFF = 4,
};

/* GLOBAL: written by sy_log_set_level() at start-up (main thread); read by every thread. */
extern enum sy_log_level sy_log_threshold;

/* Sets the minimum level that is written. Call before starting threads. */
void sy_log_set_level(enum sy_log_level level);

/* Parses "debug", "info", "warn" or "error" into *out. Returns 0, or -EINVAL. */
int sy_log_parse_level(const char *name, enum sy_log_level *out);

/* Writes one line "<time> <LEVEL> [<module>] <message>\n" to stderr. Use the macros. */
void sy_log_write(enum sy_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifndef SY_LOG_MODULE
#define SY_LOG_MODULE "-"
#endif

#define SY_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= sy_log_threshold)                                                           \
            sy_log_write((level), SY_LOG_MODULE, __VA_ARGS__);                                     \
    } while (0)
#define sy_debug(...) SY_LOG(SY_LOG_DEBUG, __VA_ARGS__)
#define sy_info(...) SY_LOG(SY_LOG_INFO, __VA_ARGS__)
#define sy_warn(...) SY_LOG(SY_LOG_WARN, __VA_ARGS__)
#define sy_error(...) SY_LOG(SY_LOG_ERROR, __VA_ARGS__)

#endif
