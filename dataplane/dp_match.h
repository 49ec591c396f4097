/* dataplane/dp_match.h - which route a request takes: routes[].match evaluated against the
 * request's features.
 *
 * dp_matcher_new() compiles a policy's match conditions once per snapshot: route bitsets
 * for the boolean traits, an index of exact model names, and ONE Aho-Corasick automaton
 * (dp_aho) over every keyword of every route plus a required literal of each regex. Per
 * request, dp_match_route() narrows the candidate routes with word-wide bit operations,
 * scans each text field at most once and only when a surviving route reads it, and runs
 * regexec() last, only for a route that passed everything else and whose literal occurs.
 * docs/internals/routing.md explains the order and the costs.
 *
 * Threads: a compiled matcher is immutable and may be used by any number of threads at
 * once; it borrows the policy (its regex_t too), which must outlive it. glibc's regexec()
 * takes a lock inside the regex_t, so concurrent use of one compiled regex is safe (and
 * serialized). All per-request state lives in a struct dp_match_scratch owned by the caller
 * (one per worker): no allocation on the request path once the scratch has grown to the
 * largest snapshot's size.
 */
#ifndef DP_MATCH_H
#define DP_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_features.h"
#include "sy_policy.h"

struct dp_matcher;

/* Regex prefilter literals shorter than this are not worth a pattern (they occur anyway). */
#define DP_MATCH_MIN_LITERAL 3

/* Per-request working memory and counters. Zero it (or dp_match_scratch_init) before the
 * first use; one per worker thread; never shared. */
struct dp_match_scratch {
    uint64_t *words; /* owned; bitsets sized by the matcher (dp_match_scratch_prepare) */
    size_t cap;      /* words allocated */
    const struct dp_matcher *prepared; /* matcher the current request was prepared for */
    unsigned scanned;                  /* SY_TEXT_* fields scanned in the current request */
    /* Running totals since init, for tests and statistics. */
    uint64_t n_regexec;         /* regexec() calls */
    uint64_t n_prefilter_skips; /* regexec() calls avoided on one field whose text lacks the
                                   literal, for a route that passed all else (a route whose
                                   literals are absent everywhere is dropped earlier, with
                                   the keyword rules, and is not counted here) */
    uint64_t n_scans;           /* automaton passes over a text field */
    uint64_t n_scan_bytes;      /* bytes those passes read */
};

struct dp_matcher_stats {
    size_t n_routes;
    size_t n_keyword_rules;
    size_t n_regex;
    size_t n_regex_distinct;    /* distinct (pattern, case) pairs: the regexec cache's keys */
    size_t n_regex_prefiltered; /* regexes with a required literal */
    size_t n_patterns;          /* automaton patterns (words + literals) */
    size_t n_states;
    size_t automaton_bytes;
    size_t scratch_bytes; /* per worker */
};

/* Compiles the match conditions of <pol>'s routes. <pol> is borrowed and must outlive the
 * matcher. Returns NULL with *errmsg set (caller frees) when the keyword automaton would
 * exceed its limits, naming the routes' policy path, or NULL with *errmsg NULL when out of
 * memory. Any thread (the snapshot builder). */
struct dp_matcher *dp_matcher_new(const struct sy_policy *pol, char **errmsg);

/* Frees <m>. Accepts NULL. */
void dp_matcher_free(struct dp_matcher *m);

void dp_matcher_get_stats(const struct dp_matcher *m, struct dp_matcher_stats *out);

/* Extracts the literal that every match of POSIX extended regex <pattern> must contain:
 * the longest run of plain characters (escaped punctuation counts as plain) at the top level
 * of the pattern, when the top level has no '|'. A character followed by a quantifier that
 * allows zero (* ? {0,..}) leaves the run; one followed by + or {n,..} (n >= 1) ends it;
 * groups, bracket expressions, '.', anchors, backslash-letter escapes and bytes >= 0x80
 * break runs. Writes the literal to <buf> (at least strlen(pattern) + 1 bytes, NUL-terminated)
 * and returns its length, or returns 0 when there is none of at least DP_MATCH_MIN_LITERAL
 * bytes (or the pattern is malformed): then there is no prefilter, which is always correct.
 * Exposed for tests. */
size_t dp_match_regex_literal(const char *pattern, char *buf);

void dp_match_scratch_init(struct dp_match_scratch *s);
void dp_match_scratch_cleanup(struct dp_match_scratch *s);

/* Sizes <s> for <m> (grows it when a larger policy arrived: the only allocation) and resets
 * the per-request state. Call once per request before dp_match_route. Returns 0 or -ENOMEM. */
int dp_match_scratch_prepare(struct dp_match_scratch *s, const struct dp_matcher *m);

/* Returns the first route of the policy, in policy order, whose every present condition
 * holds for <f>, or NULL. <s> must have been prepared for <m> in this request. Worker
 * thread; <m> shared read-only. */
const struct sy_route *dp_match_route(const struct dp_matcher *m, const struct dp_features *f,
                                      struct dp_match_scratch *s);

/* The whole resolution: the first matching route; else the model named exactly by
 * f->model (sy_policy_find_model); else pol->default_route (SIZE_MAX = none). On success
 * returns 0 with exactly one of *route / *direct_model non-NULL. Returns -ENOENT when
 * nothing applies (both NULL), -ENOMEM when the scratch could not grow. <m> must have been
 * built from <pol>. */
int dp_resolve(const struct dp_matcher *m, const struct sy_policy *pol, const struct dp_features *f,
               struct dp_match_scratch *s, const struct sy_route **route,
               const struct sy_model **direct_model);

#endif
