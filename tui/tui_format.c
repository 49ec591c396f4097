/* tui/tui_format.c - numbers as the dashboard shows them. See tui_format.h.
 *
 * Thresholds are placed where rounding would otherwise print one digit too many
 * (9.996 is "10.0", not "10.00"), so a column keeps its width as values move.
 */
#include "tui_format.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sy_util.h"

/* Three significant digits with a k/M/G/T suffix; <v> >= 999.5. */
static const char *fmt_si(char *buf, size_t size, const char *prefix, double v)
{
    static const char units[] = "kMGTPE";
    size_t u = 0;

    v /= 1000.0;
    while (v >= 999.5 && u + 1 < sizeof(units) - 1) {
        v /= 1000.0;
        u++;
    }
    if (v < 9.995)
        snprintf(buf, size, "%s%.2f%c", prefix, v, units[u]);
    else if (v < 99.95)
        snprintf(buf, size, "%s%.1f%c", prefix, v, units[u]);
    else
        snprintf(buf, size, "%s%.0f%c", prefix, v, units[u]);
    return buf;
}

const char *tui_fmt_count(char *buf, size_t size, int64_t n)
{
    if (n < 0) {
        snprintf(buf, size, "%" PRId64, n);
        return buf;
    }
    if (n < 10000) {
        snprintf(buf, size, "%" PRId64, n);
        return buf;
    }
    return fmt_si(buf, size, "", (double)n);
}

const char *tui_fmt_rate(char *buf, size_t size, double v)
{
    if (isnan(v) || isinf(v))
        snprintf(buf, size, "-");
    else if (v == 0.0)
        snprintf(buf, size, "0");
    else if (v < 0.0)
        snprintf(buf, size, "%.2f", v);
    else if (v < 0.005)
        snprintf(buf, size, "<0.01"); /* not "0.00": something did happen */
    else if (v < 9.995)
        snprintf(buf, size, "%.2f", v);
    else if (v < 99.95)
        snprintf(buf, size, "%.1f", v);
    else if (v < 999.5)
        snprintf(buf, size, "%.0f", v);
    else
        return fmt_si(buf, size, "", v);
    return buf;
}

const char *tui_fmt_ms(char *buf, size_t size, double ms)
{
    if (isnan(ms) || isinf(ms) || ms < 0.0)
        snprintf(buf, size, "-");
    else if (ms < 0.995)
        snprintf(buf, size, "%.2f ms", ms);
    else if (ms < 99.95)
        snprintf(buf, size, "%.1f ms", ms);
    else if (ms < 999.5)
        snprintf(buf, size, "%.0f ms", ms);
    else if (ms < 9995.0)
        snprintf(buf, size, "%.2f s", ms / 1000.0);
    else if (ms < 59950.0)
        snprintf(buf, size, "%.1f s", ms / 1000.0);
    else
        snprintf(buf, size, "%.1f min", ms / 60000.0);
    return buf;
}

const char *tui_fmt_pct(char *buf, size_t size, double fraction)
{
    double p = fraction * 100.0;

    if (isnan(p) || isinf(p))
        snprintf(buf, size, "-");
    else if (p == 0.0)
        snprintf(buf, size, "0%%");
    else if (fabs(p) < 0.995)
        snprintf(buf, size, "%.2f%%", p);
    else if (fabs(p) < 9.95)
        snprintf(buf, size, "%.1f%%", p);
    else
        snprintf(buf, size, "%.0f%%", p);
    return buf;
}

const char *tui_fmt_usd(char *buf, size_t size, double usd)
{
    const char *sign = usd < 0.0 ? "-" : "";
    double a = fabs(usd);

    if (isnan(usd) || isinf(usd))
        snprintf(buf, size, "-");
    else if (a == 0.0)
        snprintf(buf, size, "$0.00");
    else if (a < 0.0001)
        snprintf(buf, size, "%s$%.6f", sign, a);
    else if (a < 0.995)
        snprintf(buf, size, "%s$%.4f", sign, a);
    else if (a < 9999.995)
        snprintf(buf, size, "%s$%.2f", sign, a);
    else
        return fmt_si(buf, size, usd < 0.0 ? "-$" : "$", a);
    return buf;
}

const char *tui_fmt_ago(char *buf, size_t size, int64_t then_ms, int64_t now_ms)
{
    int64_t s;

    if (then_ms <= 0) {
        snprintf(buf, size, "never");
        return buf;
    }
    s = (now_ms - then_ms) / 1000;
    if (s < 1)
        snprintf(buf, size, "now");
    else if (s < 60)
        snprintf(buf, size, "%" PRId64 "s ago", s);
    else if (s < 3600)
        snprintf(buf, size, "%" PRId64 "m ago", s / 60);
    else if (s < 86400)
        snprintf(buf, size, "%" PRId64 "h ago", s / 3600);
    else
        snprintf(buf, size, "%" PRId64 "d ago", s / 86400);
    return buf;
}

const char *tui_fmt_duration(char *buf, size_t size, int64_t ms)
{
    int64_t s = ms > 0 ? ms / 1000 : 0;

    if (s < 60)
        snprintf(buf, size, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, size, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
    return buf;
}

const char *tui_fmt_utc(char *buf, size_t size, int64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;

    if (unix_ms <= 0 || !gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "-");
    return buf;
}

/* Appends <s> to <buf> (<size> bytes, <*len> used) when it fits whole. */
static void append(char *buf, size_t size, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + n + 1 > size)
        return;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

const char *tui_fmt_bar(char *buf, size_t size, double fraction, size_t cols, bool utf8)
{
    /* U+258F..U+2589: one to seven eighths of a block, in that order. */
    static const char *const eighths[] = {"",
                                          "\xe2\x96\x8f",
                                          "\xe2\x96\x8e",
                                          "\xe2\x96\x8d",
                                          "\xe2\x96\x8c",
                                          "\xe2\x96\x8b",
                                          "\xe2\x96\x8a",
                                          "\xe2\x96\x89"};
    size_t len = 0;
    size_t used = 0;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (isnan(fraction) || fraction < 0.0)
        fraction = 0.0;
    if (fraction > 1.0)
        fraction = 1.0;
    if (utf8) {
        size_t steps = (size_t)lround(fraction * (double)cols * 8.0);

        for (; used < steps / 8; used++)
            append(buf, size, &len, "\xe2\x96\x88");
        if (steps % 8 && used < cols) {
            append(buf, size, &len, eighths[steps % 8]);
            used++;
        }
        for (; used < cols; used++)
            append(buf, size, &len, "\xe2\x96\x91");
    } else {
        size_t full = (size_t)lround(fraction * (double)cols);

        for (; used < full; used++)
            append(buf, size, &len, "#");
        for (; used < cols; used++)
            append(buf, size, &len, ".");
    }
    return buf;
}

const char *tui_fmt_spark(char *buf, size_t size, const double *v, size_t n, bool utf8)
{
    static const char *const blocks[] = {"\xe2\x96\x81", "\xe2\x96\x82", "\xe2\x96\x83",
                                         "\xe2\x96\x84", "\xe2\x96\x85", "\xe2\x96\x86",
                                         "\xe2\x96\x87", "\xe2\x96\x88"};
    static const char ascii[] = "_.:-=+*#";
    double max = 0.0;
    size_t len = 0;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]) && v[i] > max)
            max = v[i];
    for (size_t i = 0; i < n; i++) {
        long level;

        if (isnan(v[i])) {
            append(buf, size, &len, " ");
            continue;
        }
        level = max > 0.0 && v[i] > 0.0 ? lround(v[i] / max * 7.0) : 0;
        if (level < 0)
            level = 0;
        if (level > 7)
            level = 7;
        if (utf8) {
            append(buf, size, &len, blocks[level]);
        } else {
            char c[2] = {ascii[level], '\0'};

            append(buf, size, &len, c);
        }
    }
    return buf;
}
