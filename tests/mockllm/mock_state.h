/* tests/mockllm/mock_state.h - the mock's run-time behaviour (config) and counters (stats).
 *
 * One struct mock_state per server, embedded in it and touched only by the event-loop
 * thread. A call copies the config when its request arrives, so a change applies to
 * subsequent requests only. Counter tables have a fixed number of keys: extra keys are
 * counted under "_other", so a client cannot grow the mock's memory.
 */
#ifndef MOCK_STATE_H
#define MOCK_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#define MOCK_MAX_DELAY_MS 3600000
#define MOCK_COUNTER_KEYS 256
#define MOCK_COUNTER_BUCKETS 64
#define MOCK_COUNTER_KEY_MAX 128
#define MOCK_COUNTER_OTHER "_other"

struct mock_config {
    int status;            /* 200, or the error status every API request answers */
    int latency_ms;        /* before the whole answer, or before a stream's headers */
    int ttft_ms;           /* stream: after headers, before the first event */
    int chunk_delay_ms;    /* stream: between events */
    int fail_after_chunks; /* >= 0: close after that many events (non-stream: at once) */
    bool drop_connection;  /* close without any response */
    int retry_after_s;     /* > 0: Retry-After on injected errors */
};

struct mock_counter {
    char *key;
    uint64_t n;
    int next; /* index of the next entry in the bucket, -1 at the end */
};

/* Counts by string key; keeps insertion order for printing. */
struct mock_counters {
    struct mock_counter items[MOCK_COUNTER_KEYS];
    int heads[MOCK_COUNTER_BUCKETS];
    size_t count;
    uint64_t other;
};

struct mock_stats {
    uint64_t requests_total;
    uint64_t streams_started;
    uint64_t streams_completed;
    uint64_t streams_cancelled; /* the client went away before the end */
    uint64_t streams_failed;    /* cut by fail_after_chunks or drop_connection */
    struct mock_counters by_path;
    struct mock_counters by_model;
};

struct mock_state {
    const char *name; /* borrowed; outlives the state */
    struct mock_config defaults;
    struct mock_config config;
    struct mock_stats stats;
};

/* Sets up <st> with start-up <defaults> as the current config and zero stats. <name> is
 * borrowed. Thread: event loop. */
void mock_state_init(struct mock_state *st, const char *name, const struct mock_config *defaults);

/* Frees the counter keys. Thread: event loop. */
void mock_state_cleanup(struct mock_state *st);

/* Restores the start-up config and zeroes the stats (POST /_mock/reset). */
void mock_state_reset(struct mock_state *st);

/* Applies the members present in the JSON object <json> (<len> bytes) to <cfg>, all or
 * nothing. Returns 0, or -EINVAL with *errmsg set (malloc'd, caller frees) naming the bad
 * field. */
int mock_config_apply_json(struct mock_config *cfg, const char *json, size_t len, char **errmsg);

/* Returns <cfg> as a JSON object (caller deletes), NULL on OOM. */
cJSON *mock_config_to_json(const struct mock_config *cfg);

/* Counts one API request on <path> naming <model> (NULL: none). */
void mock_stats_count(struct mock_stats *stats, const char *path, const char *model);

/* Returns the GET /_mock/stats document (caller deletes), NULL on OOM. */
cJSON *mock_state_stats_json(const struct mock_state *st, size_t in_flight);

#endif
