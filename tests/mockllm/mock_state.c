/* tests/mockllm/mock_state.c - config parsing and the stats counters (see mock_state.h).
 *
 * Event-loop thread only. Counter keys are copies owned by their table.
 */
#include "mock_state.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

static void counters_init(struct mock_counters *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < MOCK_COUNTER_BUCKETS; i++)
        c->heads[i] = -1;
}

static void counters_cleanup(struct mock_counters *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->items[i].key);
    counters_init(c);
}

static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void counters_add(struct mock_counters *c, const char *key)
{
    uint32_t b = hash_key(key) % MOCK_COUNTER_BUCKETS;
    struct mock_counter *it;

    for (int i = c->heads[b]; i >= 0; i = c->items[i].next) {
        if (strcmp(c->items[i].key, key) == 0) {
            c->items[i].n++;
            return;
        }
    }
    if (c->count == MOCK_COUNTER_KEYS || strlen(key) > MOCK_COUNTER_KEY_MAX) {
        c->other++;
        return;
    }
    it = &c->items[c->count];
    it->key = sy_xstrdup(key);
    it->n = 1;
    it->next = c->heads[b];
    c->heads[b] = (int)c->count++;
}

static cJSON *counters_to_json(const struct mock_counters *c)
{
    cJSON *obj = cJSON_CreateObject();

    if (!obj)
        return NULL;
    for (size_t i = 0; i < c->count; i++) {
        if (!cJSON_AddNumberToObject(obj, c->items[i].key, (double)c->items[i].n))
            goto out_delete;
    }
    if (c->other && !cJSON_AddNumberToObject(obj, MOCK_COUNTER_OTHER, (double)c->other))
        goto out_delete;
    return obj;

out_delete:
    cJSON_Delete(obj);
    return NULL;
}

void mock_state_init(struct mock_state *st, const char *name, const struct mock_config *defaults)
{
    memset(st, 0, sizeof(*st));
    st->name = name;
    st->defaults = *defaults;
    st->config = *defaults;
    counters_init(&st->stats.by_path);
    counters_init(&st->stats.by_model);
}

void mock_state_cleanup(struct mock_state *st)
{
    counters_cleanup(&st->stats.by_path);
    counters_cleanup(&st->stats.by_model);
}

void mock_state_reset(struct mock_state *st)
{
    struct mock_stats *s = &st->stats;

    st->config = st->defaults;
    counters_cleanup(&s->by_path);
    counters_cleanup(&s->by_model);
    s->requests_total = 0;
    s->streams_started = 0;
    s->streams_completed = 0;
    s->streams_cancelled = 0;
    s->streams_failed = 0;
}

/* Reads member <name> of <obj> as an integer in [min, max] into *out when present. */
static int get_int(const cJSON *obj, const char *name, int min, int max, int *out, char **errmsg)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < min ||
        it->valuedouble > max) {
        *errmsg = sy_xasprintf("%s: expected an integer in [%d, %d]", name, min, max);
        return -EINVAL;
    }
    *out = (int)it->valuedouble;
    return 0;
}

int mock_config_apply_json(struct mock_config *cfg, const char *json, size_t len, char **errmsg)
{
    static const char *const known[] = {"status",         "latency_ms",        "ttft_ms",
                                        "chunk_delay_ms", "fail_after_chunks", "drop_connection",
                                        "retry_after_s"};
    struct mock_config c = *cfg;
    const cJSON *it;
    cJSON *root;
    int rc = -EINVAL;

    root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        *errmsg = sy_xstrdup("body: expected a JSON object");
        goto out_delete;
    }
    cJSON_ArrayForEach(it, root)
    {
        bool ok = false;
        for (size_t i = 0; i < SY_ARRAY_LEN(known); i++)
            ok = ok || strcmp(it->string, known[i]) == 0;
        if (!ok) {
            *errmsg = sy_xasprintf("%s: unknown field", it->string);
            goto out_delete;
        }
    }
    if (get_int(root, "status", 200, 599, &c.status, errmsg) < 0 ||
        get_int(root, "latency_ms", 0, MOCK_MAX_DELAY_MS, &c.latency_ms, errmsg) < 0 ||
        get_int(root, "ttft_ms", 0, MOCK_MAX_DELAY_MS, &c.ttft_ms, errmsg) < 0 ||
        get_int(root, "chunk_delay_ms", 0, MOCK_MAX_DELAY_MS, &c.chunk_delay_ms, errmsg) < 0 ||
        get_int(root, "fail_after_chunks", -1, 1000000, &c.fail_after_chunks, errmsg) < 0 ||
        get_int(root, "retry_after_s", 0, 86400, &c.retry_after_s, errmsg) < 0)
        goto out_delete;
    if (c.status != 200 && c.status < 400) {
        *errmsg = sy_xstrdup("status: expected 200 or an error status in [400, 599]");
        goto out_delete;
    }
    it = cJSON_GetObjectItemCaseSensitive(root, "drop_connection");
    if (it && !cJSON_IsBool(it)) {
        *errmsg = sy_xstrdup("drop_connection: expected a boolean");
        goto out_delete;
    }
    if (it)
        c.drop_connection = cJSON_IsTrue(it);
    *cfg = c;
    rc = 0;

out_delete:
    cJSON_Delete(root);
    return rc;
}

cJSON *mock_config_to_json(const struct mock_config *cfg)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddNumberToObject(o, "status", cfg->status) ||
        !cJSON_AddNumberToObject(o, "latency_ms", cfg->latency_ms) ||
        !cJSON_AddNumberToObject(o, "ttft_ms", cfg->ttft_ms) ||
        !cJSON_AddNumberToObject(o, "chunk_delay_ms", cfg->chunk_delay_ms) ||
        !cJSON_AddNumberToObject(o, "fail_after_chunks", cfg->fail_after_chunks) ||
        !cJSON_AddBoolToObject(o, "drop_connection", cfg->drop_connection) ||
        !cJSON_AddNumberToObject(o, "retry_after_s", cfg->retry_after_s)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void mock_stats_count(struct mock_stats *stats, const char *path, const char *model)
{
    stats->requests_total++;
    counters_add(&stats->by_path, path);
    if (model)
        counters_add(&stats->by_model, model);
}

cJSON *mock_state_stats_json(const struct mock_state *st, size_t in_flight)
{
    const struct mock_stats *s = &st->stats;
    cJSON *o = cJSON_CreateObject();
    cJSON *by_path = counters_to_json(&s->by_path);
    cJSON *by_model = counters_to_json(&s->by_model);

    if (!o || !by_path || !by_model)
        goto out_delete;
    if (!cJSON_AddStringToObject(o, "name", st->name) ||
        !cJSON_AddNumberToObject(o, "requests_total", (double)s->requests_total))
        goto out_delete;
    if (!cJSON_AddItemToObject(o, "by_path", by_path))
        goto out_delete;
    by_path = NULL; /* owned by <o> now */
    if (!cJSON_AddItemToObject(o, "by_model", by_model))
        goto out_delete;
    by_model = NULL;
    if (!cJSON_AddNumberToObject(o, "streams_started", (double)s->streams_started) ||
        !cJSON_AddNumberToObject(o, "streams_completed", (double)s->streams_completed) ||
        !cJSON_AddNumberToObject(o, "streams_cancelled", (double)s->streams_cancelled) ||
        !cJSON_AddNumberToObject(o, "streams_failed", (double)s->streams_failed) ||
        !cJSON_AddNumberToObject(o, "in_flight", (double)in_flight))
        goto out_delete;
    return o;

out_delete:
    cJSON_Delete(by_path);
    cJSON_Delete(by_model);
    cJSON_Delete(o);
    return NULL;
}
