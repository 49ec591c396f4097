/* common/sy_log.c - leveled logging to stderr; one write(2) per line. Any thread. */
#include "sy_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* GLOBAL: written by sy_log_set_level() at start-up (main thread); read by every thread. */
enum sy_log_level sy_log_threshold = SY_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void sy_log_set_level(enum sy_log_level level)
{
    sy_log_threshold = level;
}

int sy_log_parse_level(const char *name, enum sy_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum sy_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void sy_log_write(enum sy_log_level level, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if (level < SY_LOG_DEBUG || level > SY_LOG_ERROR)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s [%s] ", (long)(tv.tv_usec / 1000),
                 level_names[level], module);
    if (k > 0)
        n += (size_t)k;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write keeps lines whole across threads; a failed log write has nowhere to go. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
