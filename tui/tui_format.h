/* tui/tui_format.h - numbers as the dashboard shows them: 1.2k, 3.4 ms, 0.25%, $12.34.
 *
 * Each function writes into the caller's buffer (TUI_NUM_MAX bytes is always enough unless
 * noted) and returns it, so calls nest inside a printf. NAN means "no value" (a quantile
 * over an empty window, a field the server sent as null) and prints as "-". Pure, no
 * locale: the decimal point is always '.'. Any thread.
 */
#ifndef TUI_FORMAT_H
#define TUI_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUI_NUM_MAX 40

/* A count: exact below 10000 ("9999"), then three significant digits ("12.3k", "123k",
 * "1.23M", "4.56G"). */
const char *tui_fmt_count(char *buf, size_t size, int64_t n);

/* A rate or other non-negative measure: "0", "<0.01" (small but not zero), "0.25", "12.5",
 * "345", "1.23k", "12.3k". */
const char *tui_fmt_rate(char *buf, size_t size, double v);

/* A duration in milliseconds: "0.42 ms", "3.4 ms", "210 ms", "1.25 s", "2.5 min". */
const char *tui_fmt_ms(char *buf, size_t size, double ms);

/* A fraction as a percentage: 0 -> "0%", 0.0025 -> "0.25%", 0.034 -> "3.4%",
 * 0.5 -> "50%". */
const char *tui_fmt_pct(char *buf, size_t size, double fraction);

/* Dollars: "$0.00" for zero; "$0.000031" below a cent's hundredth, "$0.0123" below a
 * dollar, "$12.34" below 10k, then "$12.3k", "$1.23M". Negative values get a '-'. */
const char *tui_fmt_usd(char *buf, size_t size, double usd);

/* How long ago <then_ms> was at <now_ms> (both Unix ms): "now", "4s ago", "5m ago",
 * "2h ago", "3d ago"; "never" when <then_ms> <= 0. A time in the future is "now". */
const char *tui_fmt_ago(char *buf, size_t size, int64_t then_ms, int64_t now_ms);

/* A duration in milliseconds, coarse: "12s", "4m05s", "3h12m", "2d03h". */
const char *tui_fmt_duration(char *buf, size_t size, int64_t ms);

/* <unix_ms> as UTC "2026-11-22 10:04:05"; "-" when <unix_ms> <= 0. */
const char *tui_fmt_utc(char *buf, size_t size, int64_t unix_ms);

/* A horizontal bar <cols> columns wide filled to <fraction> (clamped to [0, 1]): block
 * elements with eighth steps with <utf8> ("█████▍░░░░"), else "#####....." . <size> must be
 * at least 3 * <cols> + 1 (the text is cut short otherwise). */
const char *tui_fmt_bar(char *buf, size_t size, double fraction, size_t cols, bool utf8);

/* A sparkline of the <n> values <v> (NAN skipped as a space), scaled to their maximum:
 * "▁▂▃▅▇" with <utf8>, else " .:-=+*#". One column per value; <size> must be at least
 * 3 * <n> + 1. */
const char *tui_fmt_spark(char *buf, size_t size, const double *v, size_t n, bool utf8);

#endif
