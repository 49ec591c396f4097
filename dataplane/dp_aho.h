/* dataplane/dp_aho.h - Aho-Corasick multi-pattern search: which of many literals occur in a
 * text, in one pass over the text.
 *
 * Built once (per policy snapshot) from a list of patterns, each tagged with a bit number;
 * a scan sets the bit of every pattern that occurs anywhere in the text. Matching folds
 * ASCII case (A-Z = a-z) for patterns and text alike; other bytes compare exactly, so
 * non-ASCII letters are case-sensitive. The automaton is a full DFA over byte classes, so
 * a scan costs one table load per byte whatever the number of patterns; long texts are
 * cut into four overlapping pieces scanned in lockstep (docs/internals/routing.md).
 *
 * Immutable once built: any number of threads may scan with the same automaton.
 */
#ifndef DP_AHO_H
#define DP_AHO_H

#include <stddef.h>
#include <stdint.h>

/* Limits that keep a hostile policy from building a huge automaton. */
#define DP_AHO_MAX_PATTERN_BYTES (4u * 1024 * 1024) /* sum of pattern lengths */
#define DP_AHO_MAX_CELLS (32u * 1024 * 1024)        /* states x byte classes (4 bytes each) */

struct dp_aho;

struct dp_aho_pattern {
    const char *text; /* <len> bytes, not necessarily NUL-terminated; borrowed */
    size_t len;       /* > 0 */
    uint32_t bit;     /* set in the scan's bitset when the pattern occurs */
};

struct dp_aho_stats {
    size_t n_patterns;
    size_t n_states;
    size_t n_classes; /* byte classes: distinct folded pattern bytes + 1 */
    size_t max_len;   /* longest pattern */
    size_t bytes;     /* memory held by the automaton */
};

/* Builds the automaton for the <n> patterns <pats> (the same text may appear several times
 * with different bits). Returns NULL with *errmsg set (caller frees) when a pattern is empty
 * or a limit above is exceeded, or NULL with *errmsg NULL when out of memory. Nothing of
 * <pats> is kept. */
struct dp_aho *dp_aho_new(const struct dp_aho_pattern *pats, size_t n, char **errmsg);

/* Frees <a>. Accepts NULL. */
void dp_aho_free(struct dp_aho *a);

/* Sets in <bits> (a bitset of 64-bit words, large enough for every pattern's bit) the bit of
 * each pattern found in <text> (<len> bytes; NUL bytes are ordinary bytes). Bits are only
 * ever set, never cleared. Any thread. */
void dp_aho_scan(const struct dp_aho *a, const char *text, size_t len, uint64_t *bits);

/* Fills <out> with the automaton's sizes. */
void dp_aho_get_stats(const struct dp_aho *a, struct dp_aho_stats *out);

#endif
