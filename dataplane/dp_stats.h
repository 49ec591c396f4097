/* dataplane/dp_stats.h - per-worker traffic counters and latency histograms, and the
 * merged view of all workers that /metrics (and later the telemetry stream) reads.
 *
 * Each worker owns one struct dp_stats and is its only writer: recording takes no lock and
 * no atomic read-modify-write. Series are keyed by (route, provider, model, tenant, arm,
 * status class, stream) in a fixed open-addressing table of at most DP_STATS_MAX_SERIES series per
 * worker; a key that finds the table full is counted in the overflow series of its status class and
 * stream, whose names are all DP_STATS_OTHER, and in `dropped`. A series is
 * allocated the first time its key is seen (once per key and worker), then published with a
 * release store and never moves or goes away until dp_stats_cleanup.
 *
 * Any thread may read a worker's stats while it records (dp_stats_view_add): every counter
 * is a relaxed atomic, and each series carries a seqlock (odd while its writer updates it),
 * so a reader copies a series whole or retries (after 1000 tries it keeps a copy that may
 * hold a record half-applied, counted in the view's `torn`); it never blocks the writer.
 * The reader must know the worker's stats outlive the read (dp_worker frees them only once
 * every worker thread has stopped). docs/internals/stats.md has the why.
 */
#ifndef DP_STATS_H
#define DP_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sy_hist.h"

struct dp_access_entry;

#define DP_STATS_SLOTS 256      /* series table size per worker (power of two) */
#define DP_STATS_MAX_SERIES 128 /* series per worker before the overflow series */
#define DP_STATS_ERR_SLOTS 64   /* upstream error table size per worker (power of two) */
#define DP_STATS_MAX_ERRS 48    /* (provider, code) pairs per worker before the overflow */
#define DP_STATS_NAME_MAX 128   /* label values are cut (at a UTF-8 boundary) to 127 bytes */
#define DP_STATS_CODE_MAX 48
#define DP_STATS_OTHER "_other" /* label value of the overflow series */
#define DP_STATS_CACHE 128      /* recent keys (64 sets of 2), by the names' addresses */
#define DP_STATS_TAG_SLOTS 128  /* attribution table size per worker (power of two) */
#define DP_STATS_MAX_TAGS 64    /* (tenant, tag) pairs per worker before the overflow */
#define DP_STATS_MAX_USERS 16   /* of which "user:<id>" pairs; other users go to user:_other */
#define DP_STATS_TAG_MAX 136    /* "user:" + a 128-byte user id, and the NUL */

enum dp_status_class {
    DP_STATUS_2XX, /* also 1xx and 3xx, which no exchange ends with */
    DP_STATUS_4XX, /* 499: the client went away first */
    DP_STATUS_5XX,
    DP_STATUS_CLASSES,
};

/* "2xx", "4xx", "5xx". */
const char *dp_status_class_name(enum dp_status_class c);

/* The names of a key, in the order of dp_stats_key's fields. */
enum dp_stats_dim {
    DP_DIM_ROUTE,
    DP_DIM_PROVIDER,
    DP_DIM_MODEL,
    DP_DIM_TENANT,
    DP_DIM_ARM,
    DP_STATS_DIMS,
};

struct dp_stats_key {
    union {
        struct {
            char route[DP_STATS_NAME_MAX]; /* "" when the request was rejected before routing */
            char provider[DP_STATS_NAME_MAX];
            char model[DP_STATS_NAME_MAX];
            char tenant[DP_STATS_NAME_MAX]; /* "" = anonymous */
            char arm[DP_STATS_NAME_MAX];    /* "experiment/arm", or "" */
        };
        char name[DP_STATS_DIMS][DP_STATS_NAME_MAX]; /* by enum dp_stats_dim */
    };
    enum dp_status_class status_class;
    bool stream;
};

/* One series as a worker records it. */
struct dp_stats_series {
    struct dp_stats_key key; /* immutable once published */
    uint64_t hash;
    _Atomic unsigned seq; /* seqlock: odd while the writer is inside a record */
    _Atomic uint64_t requests;
    _Atomic uint64_t prompt_tokens;
    _Atomic uint64_t completion_tokens;
    _Atomic uint64_t cached_tokens;
    _Atomic uint64_t cost_nusd; /* nano-dollars: integers do not drift, and 1e-9 keeps a
                                   one-token call on a cheap model from rounding to 0 */
    struct sy_hist latency;     /* request start to last byte, us */
    struct sy_hist ttft;        /* request start to first token, us; streams only */
};

/* Failed upstream attempts for one (provider, code). */
struct dp_stats_err {
    char provider[DP_STATS_NAME_MAX];
    char code[DP_STATS_CODE_MAX]; /* the provider's HTTP status ("503"), else the failure */
    uint64_t hash;
    _Atomic bool used; /* set (release) once provider and code are written */
    _Atomic uint64_t count;
};

/* Attribution: requests and spend per (tenant, tag), where the tags of a request are its
 * x-switchyard-tags and "user:<id>" for the body's user. Bounded: DP_STATS_MAX_TAGS pairs per
 * worker (at most DP_STATS_MAX_USERS of them users), the rest in the overflow pair
 * (_other, _other). Each counter is a relaxed atomic on its own (no seqlock: a reader may see
 * a request in one counter and not yet in another). */
struct dp_stats_tag {
    char tenant[DP_STATS_NAME_MAX];
    char tag[DP_STATS_TAG_MAX];
    uint64_t hash;
    _Atomic bool used; /* set (release) once tenant and tag are written */
    _Atomic uint64_t requests;
    _Atomic uint64_t prompt_tokens;
    _Atomic uint64_t completion_tokens;
    _Atomic uint64_t cost_nusd;
};

/* A key seen recently, by the addresses of its names (the policy's strings, stable while a
 * snapshot lives); a hit is confirmed by comparing the names, since addresses are reused
 * after a policy swap. */
struct dp_stats_cached {
    const char *name[DP_STATS_DIMS]; /* the names as dp_stats_record got them */
    enum dp_status_class status_class;
    bool stream;
    struct dp_stats_series *series; /* NULL: empty */
};

struct dp_stats {
    _Atomic(struct dp_stats_series *) slots[DP_STATS_SLOTS];
    _Atomic(struct dp_stats_series *) overflow[DP_STATUS_CLASSES][2]; /* [class][stream] */
    struct dp_stats_err errs[DP_STATS_ERR_SLOTS];
    struct dp_stats_err err_overflow;
    struct dp_stats_tag tags[DP_STATS_TAG_SLOTS];
    struct dp_stats_tag tag_overflow;
    size_t n_tags, n_user_tags;                   /* writer only */
    struct dp_stats_cached cache[DP_STATS_CACHE]; /* writer only */
    size_t n_series;                              /* writer only */
    size_t n_errs;                                /* writer only */
    _Atomic uint64_t dropped;                     /* records that went to an overflow series */
    _Atomic int64_t in_flight;                    /* exchanges begun and not yet recorded */
};

/* Prepares <st> (embedded; empty, nothing allocated yet). Before any thread uses it. */
void dp_stats_init(struct dp_stats *st);
/* Frees the series. No thread may read or write <st> any more. Accepts a zeroed struct. */
void dp_stats_cleanup(struct dp_stats *st);

/* A model exchange starts: one more in flight. Owning worker only. */
void dp_stats_begin(struct dp_stats *st);

/* A model exchange ended with the outcome <e> (the access log entry: route, provider,
 * model, status, stream, latency, TTFT, tokens, cost): one fewer in flight, and counted in
 * its series. Allocates the series the first time its key is seen. Owning worker only. */
void dp_stats_record(struct dp_stats *st, const struct dp_access_entry *e);

/* An upstream attempt to <provider> failed. <http_status> is what the provider answered (0
 * when it did not answer); <code> the normalized failure (e.g. "upstream_timeout"). Counted
 * under the status when it is an HTTP error (>= 400), else under <code>. Owning worker. */
void dp_stats_upstream_error(struct dp_stats *st, const char *provider, int http_status,
                             const char *code);

/* ---- the merged view (any thread) ---- */

/* One series summed over workers; plain numbers (the view has one owner). */
struct dp_stats_row {
    struct dp_stats_key key;
    uint64_t hash;
    uint64_t requests;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;
    uint64_t cost_nusd;
    struct sy_hist latency;
    struct sy_hist ttft;
};

struct dp_stats_err_row {
    char provider[DP_STATS_NAME_MAX];
    char code[DP_STATS_CODE_MAX];
    uint64_t count;
};

struct dp_stats_tag_row {
    char tenant[DP_STATS_NAME_MAX];
    char tag[DP_STATS_TAG_MAX];
    uint64_t requests, prompt_tokens, completion_tokens, cost_nusd;
};

struct dp_stats_view {
    struct dp_stats_row **rows; /* sorted by key after dp_stats_view_finish */
    size_t n_rows, cap_rows;
    struct dp_stats_err_row *errs; /* sorted by (provider, code) after finish */
    size_t n_errs, cap_errs;
    struct dp_stats_tag_row *tags; /* sorted by (tenant, tag) after finish */
    size_t n_tags, cap_tags;
    int64_t in_flight;
    uint64_t dropped;
    uint64_t torn; /* series copied while their writer kept recording (see dp_stats.c) */
    /* private */
    size_t *index; /* open addressing over rows; SIZE_MAX = empty */
    size_t index_cap;
    struct dp_stats_row *scratch;
};

/* An empty view. Returns NULL when out of memory. */
struct dp_stats_view *dp_stats_view_new(void);
/* Adds a consistent copy of each of <st>'s series (and its other counters) to <v>, while
 * <st>'s worker goes on recording. Returns 0 or -ENOMEM (<v> then holds part of <st>). */
int dp_stats_view_add(struct dp_stats_view *v, const struct dp_stats *st);
/* Sorts rows and errors for stable output. */
void dp_stats_view_finish(struct dp_stats_view *v);
/* Accepts NULL. */
void dp_stats_view_free(struct dp_stats_view *v);

typedef void (*dp_stats_row_fn)(const struct dp_stats_row *delta, void *arg);
typedef void (*dp_stats_err_fn)(const struct dp_stats_err_row *delta, void *arg);

/* What happened between two finished views of the same stats, <prev> (earlier; NULL =
 * nothing before) and <cur>: calls <row_fn> with the difference of each series that
 * served requests since (counts, tokens, cost, histograms; sy_hist_delta), then <err_fn>
 * for each (provider, code) that failed since. The delta is borrowed for the call.
 * Returns 0 or -ENOMEM. Any thread. */
int dp_stats_view_diff(const struct dp_stats_view *cur, const struct dp_stats_view *prev,
                       dp_stats_row_fn row_fn, dp_stats_err_fn err_fn, void *arg);

/* The same for the attribution pairs: <fn> gets each (tenant, tag) that grew since <prev>. */
typedef void (*dp_stats_tag_fn)(const struct dp_stats_tag_row *delta, void *arg);
void dp_stats_view_diff_tags(const struct dp_stats_view *cur, const struct dp_stats_view *prev,
                             dp_stats_tag_fn fn, void *arg);

#endif
