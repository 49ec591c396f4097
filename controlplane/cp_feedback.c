/* controlplane/cp_feedback.c - feedback: verify, deduplicate by compare-and-swap, store. */
#define SY_LOG_MODULE "feedback"

#include "cp_feedback.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "cp_reply.h"
#include "cp_spend.h"
#include "cp_store.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_reqid.h"
#include "sy_util.h"

#define METRIC_MAX 64
#define COMMENT_MAX 2000
#define DAY_S 86400

struct cp_feedback {
    struct cp_store *store;
    struct sy_reqid_key *key; /* the fleet key, prepared once */
    pthread_mutex_t lock;     /* counters */
    uint64_t accepted, duplicates, refused;
};

struct cp_feedback *cp_feedback_new(struct cp_store *store, const uint8_t *key, size_t key_len)
{
    struct cp_feedback *fb = sy_xcalloc(1, sizeof(*fb));

    fb->store = store;
    fb->key = sy_reqid_key_new(key, key_len);
    if (!fb->key) {
        free(fb);
        return NULL;
    }
    pthread_mutex_init(&fb->lock, NULL);
    return fb;
}

void cp_feedback_free(struct cp_feedback *fb)
{
    if (!fb)
        return;
    sy_reqid_key_free(fb->key);
    pthread_mutex_destroy(&fb->lock);
    free(fb);
}

void cp_feedback_events_free(struct cp_feedback_event *ev, size_t n)
{
    for (size_t i = 0; ev && i < n; i++) {
        free(ev[i].request_id);
        free(ev[i].metric);
        free(ev[i].tenant);
        free(ev[i].route);
        free(ev[i].model);
        free(ev[i].experiment);
        free(ev[i].arm);
    }
    free(ev);
}

static bool metric_ok(const char *m)
{
    size_t n = strlen(m);

    if (n > METRIC_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = m[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
              ch == '-'))
            return false;
    }
    return true;
}

static void count(struct cp_feedback *fb, enum cp_feedback_result r)
{
    pthread_mutex_lock(&fb->lock);
    if (r == CP_FEEDBACK_OK)
        fb->accepted++;
    else if (r == CP_FEEDBACK_DUPLICATE)
        fb->duplicates++;
    else
        fb->refused++;
    pthread_mutex_unlock(&fb->lock);
}

static void set_err(char **errmsg, char *msg)
{
    if (errmsg)
        *errmsg = msg;
    else
        free(msg);
}

static enum cp_feedback_result record(struct cp_feedback *fb, const char *request_id,
                                      const char *thumbs, double score, const char *metric,
                                      const char *comment, const char *via, int64_t now_ms,
                                      struct cp_feedback_event **out, char **errmsg)
{
    struct sy_reqid id;
    char *err = NULL, *text, hash_src[SY_REQID_MAX_LEN + METRIC_MAX + 4], hash[17];
    char key[128], day[11];
    cJSON *o;
    int rc;

    metric = metric ? metric : "";
    if (!request_id || !*request_id) {
        set_err(errmsg, sy_xstrdup("request_id is required"));
        return CP_FEEDBACK_INVALID;
    }
    if ((thumbs != NULL) == (score >= 0)) {
        set_err(errmsg, sy_xstrdup("give exactly one of thumbs (\"up\" or \"down\") and score"));
        return CP_FEEDBACK_INVALID;
    }
    if (thumbs && strcmp(thumbs, "up") != 0 && strcmp(thumbs, "down") != 0) {
        set_err(errmsg, sy_xasprintf("thumbs must be \"up\" or \"down\", not \"%.20s\"", thumbs));
        return CP_FEEDBACK_INVALID;
    }
    if (!thumbs && !(score >= 0 && score <= 1)) {
        set_err(errmsg, sy_xstrdup("score must be a number from 0 to 1"));
        return CP_FEEDBACK_INVALID;
    }
    if (!metric_ok(metric)) {
        set_err(errmsg,
                sy_xasprintf("metric must be at most %d characters of a-z 0-9 _ . -", METRIC_MAX));
        return CP_FEEDBACK_INVALID;
    }
    if (comment && strlen(comment) > COMMENT_MAX) {
        set_err(errmsg, sy_xasprintf("comment must be at most %d bytes", COMMENT_MAX));
        return CP_FEEDBACK_INVALID;
    }
    rc = sy_reqid_verify(fb->key, request_id, &id, &err);
    if (rc < 0) {
        set_err(errmsg,
                sy_xasprintf("request_id is not one this fleet issued: %s", err ? err : "invalid"));
        free(err);
        return rc == -ENOMEM ? CP_FEEDBACK_UNAVAILABLE : CP_FEEDBACK_UNKNOWN;
    }
    if (id.unix_s < now_ms / 1000 - SY_REQID_TTL_S ||
        id.unix_s > now_ms / 1000 + SY_REQID_FUTURE_S) {
        set_err(errmsg, sy_xasprintf("request_id was issued at %" PRId64
                                     " (unix seconds): feedback is accepted for %d days",
                                     id.unix_s, SY_REQID_TTL_S / DAY_S));
        return CP_FEEDBACK_EXPIRED;
    }

    snprintf(hash_src, sizeof(hash_src), "%s\x1f%s", request_id, metric);
    sy_sha256_hex16(hash_src, strlen(hash_src), hash);
    cp_spend_day(id.unix_s * 1000, day);
    snprintf(key, sizeof(key), "feedback/%s/%s", day, hash);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "request_id", request_id);
    cJSON_AddStringToObject(o, "metric", metric);
    cJSON_AddStringToObject(o, "tenant", id.tenant);
    cJSON_AddStringToObject(o, "route", id.route);
    cJSON_AddStringToObject(o, "model", id.model);
    cJSON_AddStringToObject(o, "experiment", id.experiment);
    cJSON_AddStringToObject(o, "arm", id.arm);
    cJSON_AddNumberToObject(o, "policy_version", (double)id.policy_version);
    cJSON_AddNumberToObject(o, "issued_unix_s", (double)id.unix_s);
    cJSON_AddNumberToObject(o, "received_unix_ms", (double)now_ms);
    if (thumbs)
        cJSON_AddStringToObject(o, "thumbs", thumbs);
    else
        cJSON_AddNumberToObject(o, "score", score);
    if (comment && *comment)
        cJSON_AddStringToObject(o, "comment", comment);
    cJSON_AddStringToObject(o, "via", via ? via : "");
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rc = cp_store_cas(fb->store, key, text, strlen(text), 0, NULL);
    free(text);
    if (rc == -EEXIST) {
        set_err(errmsg, sy_xasprintf("feedback%s%s for this request_id was already recorded",
                                     metric[0] ? " on metric " : "", metric));
        return CP_FEEDBACK_DUPLICATE;
    }
    if (rc < 0) {
        set_err(errmsg, sy_xasprintf("the store cannot be written: %s", strerror(-rc)));
        return CP_FEEDBACK_UNAVAILABLE;
    }
    if (out) {
        struct cp_feedback_event *e = sy_xcalloc(1, sizeof(*e));
        e->request_id = sy_xstrdup(request_id);
        e->metric = sy_xstrdup(metric);
        e->tenant = sy_xstrdup(id.tenant);
        e->route = sy_xstrdup(id.route);
        e->model = sy_xstrdup(id.model);
        e->experiment = sy_xstrdup(id.experiment);
        e->arm = sy_xstrdup(id.arm);
        e->policy_version = id.policy_version;
        e->issued_unix_s = id.unix_s;
        e->received_unix_ms = now_ms;
        e->thumbs = thumbs != NULL;
        e->value = thumbs ? (strcmp(thumbs, "up") == 0 ? 1.0 : 0.0) : score;
        *out = e;
    }
    return CP_FEEDBACK_OK;
}

enum cp_feedback_result cp_feedback_record(struct cp_feedback *fb, const char *request_id,
                                           const char *thumbs, double score, const char *metric,
                                           const char *comment, const char *via, int64_t now_ms,
                                           struct cp_feedback_event **out, char **errmsg)
{
    enum cp_feedback_result r =
        record(fb, request_id, thumbs, score, metric, comment, via, now_ms, out, errmsg);
    count(fb, r);
    return r;
}

/* ---- reading back --------------------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int cp_feedback_events(struct cp_feedback *fb, int64_t since_unix_s, int64_t now_ms,
                       struct cp_feedback_event **out, size_t *n)
{
    struct cp_feedback_event *ev = NULL;
    size_t cap = 0, count = 0;
    int64_t oldest = now_ms / 1000 - (int64_t)CP_FEEDBACK_RETENTION_DAYS * DAY_S;
    int64_t first = since_unix_s > oldest ? since_unix_s : oldest;

    /* One range per day: ids are stored under their issue day. */
    for (int64_t t = first - first % DAY_S; t <= now_ms / 1000 + SY_REQID_FUTURE_S; t += DAY_S) {
        char day[11], prefix[32];
        struct cp_kv *kvs = NULL;
        size_t nk = 0;
        int rc;

        cp_spend_day(t * 1000, day);
        snprintf(prefix, sizeof(prefix), "feedback/%s/", day);
        rc = cp_store_range(fb->store, prefix, &kvs, &nk);
        if (rc < 0) {
            cp_feedback_events_free(ev, count);
            return rc;
        }
        for (size_t i = 0; i < nk; i++) {
            cJSON *o = cJSON_ParseWithLength(kvs[i].value, kvs[i].value_len);
            struct cp_feedback_event *e;
            const cJSON *th;

            /* Skip what is not an event, and older ids stored in the first day. */
            if (!cJSON_IsObject(o) || (int64_t)jnum(o, "issued_unix_s", 0) < since_unix_s) {
                cJSON_Delete(o);
                continue;
            }
            if (count == cap) {
                cap = cap ? cap * 2 : 256;
                ev = sy_xrealloc(ev, cap * sizeof(*ev));
            }
            e = &ev[count++];
            e->request_id = sy_xstrdup(jstr(o, "request_id"));
            e->metric = sy_xstrdup(jstr(o, "metric"));
            e->tenant = sy_xstrdup(jstr(o, "tenant"));
            e->route = sy_xstrdup(jstr(o, "route"));
            e->model = sy_xstrdup(jstr(o, "model"));
            e->experiment = sy_xstrdup(jstr(o, "experiment"));
            e->arm = sy_xstrdup(jstr(o, "arm"));
            e->policy_version = (int64_t)jnum(o, "policy_version", 0);
            e->issued_unix_s = (int64_t)jnum(o, "issued_unix_s", 0);
            e->received_unix_ms = (int64_t)jnum(o, "received_unix_ms", 0);
            th = cJSON_GetObjectItemCaseSensitive(o, "thumbs");
            e->thumbs = cJSON_IsString(th);
            e->value =
                e->thumbs ? (strcmp(th->valuestring, "up") == 0 ? 1.0 : 0.0) : jnum(o, "score", 0);
            cJSON_Delete(o);
        }
        cp_kv_array_free(kvs, nk);
    }
    *out = ev;
    *n = count;
    return 0;
}

/* ---- inputs --------------------------------------------------------------------------- */

int cp_feedback_from_telemetry(void *arg, const Switchyard__V1__Feedback *f, const char *node)
{
    struct cp_feedback *fb = arg;
    char *err = NULL;
    enum cp_feedback_result r;

    r = cp_feedback_record(
        fb, f->request_id, f->thumbs && f->thumbs[0] ? f->thumbs : NULL,
        f->score ? f->score->value : -1, f->metric, f->comment, node,
        f->received_unix_ms > 0 ? f->received_unix_ms : (int64_t)(sy_wall_us() / 1000), NULL, &err);
    if (r == CP_FEEDBACK_DUPLICATE)
        sy_debug("feedback via %s: %s", node, err ? err : "duplicate");
    else if (r != CP_FEEDBACK_OK && r != CP_FEEDBACK_UNAVAILABLE)
        sy_warn("feedback via %s dropped: %s", node, err ? err : "?");
    free(err);
    return r == CP_FEEDBACK_UNAVAILABLE ? -EAGAIN : 0;
}

void cp_feedback_on_admin(struct sy_http_req *req, const char *rest, void *arg)
{
    static const struct {
        int status;
        const char *code;
    } answers[] = {
        [CP_FEEDBACK_DUPLICATE] = {409, "duplicate_feedback"},
        [CP_FEEDBACK_INVALID] = {400, "invalid_feedback"},
        [CP_FEEDBACK_UNKNOWN] = {404, "unknown_request_id"},
        [CP_FEEDBACK_EXPIRED] = {410, "request_id_expired"},
        [CP_FEEDBACK_UNAVAILABLE] = {503, "store_unavailable"},
    };
    struct cp_feedback *fb = arg;
    size_t len;
    const char *body = sy_http_req_body(req, &len);
    const char *thumbs = NULL, *metric = NULL, *comment = NULL, *id = NULL;
    struct cp_feedback_event *ev = NULL;
    double score = -1;
    char *err = NULL;
    cJSON *root, *v, *reply;
    enum cp_feedback_result r;

    if (rest[0]) {
        cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
        return;
    }
    if (sy_http_req_method(req) != SY_HTTP_POST) {
        cp_reply_error(req, 405, "method_not_allowed", "use POST on /v1/feedback");
        return;
    }
    root = cJSON_ParseWithLength(body ? body : "", len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cp_reply_error(req, 400, "invalid_feedback", "the body must be a JSON object");
        return;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    if (v && !cJSON_IsString(v)) {
        cp_reply_error(req, 400, "invalid_feedback", "request_id must be a string");
        goto out;
    }
    id = v ? v->valuestring : NULL;
    v = cJSON_GetObjectItemCaseSensitive(root, "thumbs");
    if (v && !cJSON_IsString(v)) {
        cp_reply_error(req, 400, "invalid_feedback", "thumbs must be \"up\" or \"down\"");
        goto out;
    }
    thumbs = v ? v->valuestring : NULL;
    v = cJSON_GetObjectItemCaseSensitive(root, "score");
    if (v && (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
              v->valuedouble > 1)) {
        cp_reply_error(req, 400, "invalid_feedback", "score must be a number from 0 to 1");
        goto out;
    }
    score = v ? v->valuedouble : -1;
    v = cJSON_GetObjectItemCaseSensitive(root, "metric");
    if (v && !cJSON_IsString(v)) {
        cp_reply_error(req, 400, "invalid_feedback", "metric must be a string");
        goto out;
    }
    metric = v ? v->valuestring : NULL;
    v = cJSON_GetObjectItemCaseSensitive(root, "comment");
    if (v && !cJSON_IsString(v)) {
        cp_reply_error(req, 400, "invalid_feedback", "comment must be a string");
        goto out;
    }
    comment = v ? v->valuestring : NULL;
    r = cp_feedback_record(fb, id, thumbs, score, metric, comment, "control",
                           (int64_t)(sy_wall_us() / 1000), &ev, &err);
    if (r != CP_FEEDBACK_OK) {
        cp_reply_error(req, answers[r].status, answers[r].code, "%s", err ? err : "?");
        free(err);
        goto out;
    }
    reply = cJSON_CreateObject();
    cJSON_AddStringToObject(reply, "status", "recorded");
    cJSON_AddStringToObject(reply, "request_id", ev->request_id);
    cJSON_AddStringToObject(reply, "route", ev->route);
    cJSON_AddStringToObject(reply, "model", ev->model);
    cJSON_AddStringToObject(reply, "experiment", ev->experiment);
    cJSON_AddStringToObject(reply, "arm", ev->arm);
    cp_reply_json(req, 201, reply);
    cp_feedback_events_free(ev, 1);
out:
    cJSON_Delete(root);
}

int cp_feedback_expire(struct cp_feedback *fb, int64_t now_ms, size_t *deleted)
{
    int64_t last = now_ms / 1000 - ((int64_t)CP_FEEDBACK_RETENTION_DAYS + 1) * DAY_S;

    *deleted = 0;
    /* Days just past the retention, a little more than what one missed run leaves behind. */
    for (int64_t t = last - 60 * DAY_S; t <= last; t += DAY_S) {
        char day[11], prefix[32];
        struct cp_kv *kvs = NULL;
        size_t n = 0;
        int rc;

        cp_spend_day(t * 1000, day);
        snprintf(prefix, sizeof(prefix), "feedback/%s/", day);
        rc = cp_store_range(fb->store, prefix, &kvs, &n);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            rc = cp_store_del(fb->store, kvs[i].key);
            if (rc < 0) {
                cp_kv_array_free(kvs, n);
                return rc;
            }
            (*deleted)++;
        }
        cp_kv_array_free(kvs, n);
    }
    return 0;
}

void cp_feedback_counters(struct cp_feedback *fb, uint64_t *accepted, uint64_t *duplicates,
                          uint64_t *refused)
{
    pthread_mutex_lock(&fb->lock);
    *accepted = fb->accepted;
    *duplicates = fb->duplicates;
    *refused = fb->refused;
    pthread_mutex_unlock(&fb->lock);
}
