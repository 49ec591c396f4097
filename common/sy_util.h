/* common/sy_util.h - small helpers every binary needs: abort-on-OOM allocation for small
 * fixed-size objects, monotonic and wall clocks, strict number parsing, host:port parsing.
 * All functions are thread-safe and keep no state.
 */
#ifndef SY_UTIL_H
#define SY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation for small, fixed-size objects: aborts the process when memory runs out.
 * Input-sized allocations must use plain malloc and handle NULL (STYLE.md). */
void *sy_xmalloc(size_t n);
void *sy_xcalloc(size_t count, size_t n);
void *sy_xrealloc(void *p, size_t n);
char *sy_xstrdup(const char *s);
char *sy_xstrndup(const char *s, size_t n);

/* Returns a heap string formatted like printf (abort on OOM). Caller frees. */
char *sy_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in microseconds (CLOCK_MONOTONIC). */
uint64_t sy_now_us(void);
/* Wall clock in microseconds since the epoch (CLOCK_REALTIME). */
uint64_t sy_wall_us(void);

/* Parses all of <s> as a base-10 integer within [min, max]. Returns 0, or -EINVAL. */
int sy_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Splits "HOST:PORT" or "[V6]:PORT" into host (NUL-terminated, at most <hostlen>-1 chars)
 * and port (0-65535). Returns 0, or -EINVAL. */
int sy_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* A reconnect delay for the <attempt>-th retry (0 first): <base_ms> doubled per attempt up to
 * <max_ms>, then a random point in its upper half ("equal jitter"), so a fleet that lost
 * its server at once does not come back at once. Any thread. */
uint64_t sy_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms);

/* Fills <out> with the 64 lowercase hex digits of SHA-256(<data>) and a NUL. Returns 0, or
 * -ENOMEM when the digest could not be computed (<out> is then ""). */
int sy_sha256_hex(const void *data, size_t len, char out[65]);

/* The same, cut to its first 16 hex digits. */
int sy_sha256_hex16(const void *data, size_t len, char out[17]);

/* Case-insensitive comparison of <a> (length <alen>) with the NUL-terminated <b>. */
bool sy_strcaseeq_n(const char *a, size_t alen, const char *b);

#endif
