/* controlplane/store/cp_store_etcd.c - the store on etcd v3, through its JSON gateway.
 *
 * Every call is one POST to /v3/kv/{range,put,txn,deleterange} with keys and values in
 * base64 and int64 fields as JSON strings; the key sent is <prefix> + key, and the prefix
 * is taken off again in answers. Requests share one CURL handle under <mu> (the store
 * contract serialises calls anyway; the handle keeps the connection alive), with a 1 s
 * connect and 3 s request timeout. A request that could not connect moves on to the next
 * endpoint; one that may have reached etcd is only retried elsewhere when it is a read, so
 * a put or txn is never applied twice behind the caller's back.
 *
 * The watch runs on its own thread with its own handle: a streaming POST /v3/watch that
 * starts at <next_rev> and advances it past every event delivered, so when the stream
 * drops (etcd restarts, the endpoint goes away) it reconnects with backoff and resumes
 * exactly after the last event the callback saw: nothing lost, nothing twice. The stream
 * is driven by a curl multi handle so that free() can wake it (curl_multi_wakeup) and
 * join at once.
 *
 * Leader election (campaign) is etcd's lease pattern: each candidate holds a lease of the
 * TTL it asks for and renews it on every round (/v3/lease/keepalive); the leader is whoever
 * created the key with its lease attached (a txn: create_revision == 0, then put with the
 * lease). A leader that stops renewing loses the lease, etcd deletes the key, and the next
 * candidate's create succeeds. Each key has its own lease, so giving up one election never
 * ends another. The campaigns (lease, standing) are guarded by <cmu>, separate from <mu> so
 * that a round never holds up other calls for longer than one request.
 */
#include "cp_store_etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#define SY_LOG_MODULE "store-etcd"
#include "sy_log.h"
#include "sy_util.h"

#define ETCD_CONNECT_TIMEOUT_MS 1000L
#define ETCD_REQUEST_TIMEOUT_MS 3000L
/* Largest answer we buffer: a range over every policy version fits comfortably. */
#define ETCD_MAX_RESPONSE (64u << 20)
/* Watch reconnect backoff. */
#define ETCD_BACKOFF_MIN_MS 100
#define ETCD_BACKOFF_MAX_MS 5000

struct etcd_buf {
    char *p;
    size_t len;
    size_t cap;
    bool overflow;
};

/* Most election keys one store campaigns for (a few single-writer jobs). */
#define ETCD_MAX_CAMPAIGNS 8

/* One election this store takes part in. */
struct etcd_campaign {
    char *key;             /* without the prefix */
    int64_t lease;         /* our lease for it, 0 = none */
    bool leading;          /* the key holds our id under our lease, as last seen */
    uint64_t confirmed_us; /* sy_now_us() before the last request that confirmed it */
};

struct etcd_store {
    struct cp_store base; /* base.prefix: owned copy of the key prefix */
    char **endpoints;     /* "http://H:P", no trailing '/' */
    size_t n_endpoints;

    pthread_mutex_t mu; /* guards curl, headers use, body, cur */
    CURL *curl;
    struct curl_slist *headers;
    struct etcd_buf body;
    size_t cur; /* the endpoint that answered last */

    /* The watch: fields below are set by watch() before the thread starts, then owned by
     * the thread; <stop> and the wake-ups are shared. */
    bool watching;
    pthread_t thread;
    char *watch_key; /* full key (prefix included) */
    cp_store_watch_fn watch_cb;
    void *watch_arg;
    int64_t next_rev;
    size_t watch_ep;
    CURLM *wmulti;
    struct etcd_buf wline; /* the incomplete line of the stream */
    bool wcreated;         /* the current stream said "created" */
    bool wfailed;          /* the current stream must be dropped and reopened */
    atomic_bool stop;
    pthread_mutex_t wmu; /* with wcond: the backoff sleep */
    pthread_cond_t wcond;

    /* Leader elections, guarded by cmu. */
    pthread_mutex_t cmu;
    struct etcd_campaign camps[ETCD_MAX_CAMPAIGNS];
    size_t n_camps;
};

static struct etcd_store *es_of(struct cp_store *s)
{
    return (struct etcd_store *)s;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- base64 and JSON helpers ---- */

/* Returns a new NUL-terminated base64 encoding of <len> bytes (abort on OOM). */
static char *b64_encode(const char *p, size_t len)
{
    char *out = sy_xmalloc(4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)p, (int)len);
    return out;
}

/* Decodes base64 <s> into a new NUL-terminated buffer. Returns 0, -EINVAL or -ENOMEM. */
static int b64_decode(const char *s, char **out, size_t *out_len)
{
    size_t len = strlen(s), pad = 0;
    char *buf;
    int n;

    if (len % 4 != 0 || len > 2 * (size_t)CP_STORE_MAX_VALUE + 16)
        return -EINVAL;
    if (len > 0 && s[len - 1] == '=')
        pad++;
    if (len > 1 && s[len - 2] == '=')
        pad++;
    buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -ENOMEM;
    n = EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)s, (int)len);
    if (n < 0 || (size_t)n < pad) {
        free(buf);
        return -EINVAL;
    }
    /* EVP_DecodeBlock counts the zero bytes the padding stands for. */
    *out_len = (size_t)n - pad;
    buf[*out_len] = '\0';
    *out = buf;
    return 0;
}

static void add_b64(cJSON *obj, const char *name, const char *p, size_t len)
{
    char *enc = b64_encode(p, len);

    cJSON_AddStringToObject(obj, name, enc);
    free(enc);
}

static void add_i64(cJSON *obj, const char *name, int64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRId64, v);
    cJSON_AddStringToObject(obj, name, num);
}

/* Reads an int64 field that etcd sends as a string (or, leniently, a number); a missing
 * field is its default, 0. Returns 0 or -EINVAL. */
static int get_i64(const cJSON *obj, const char *name, int64_t *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);

    *out = 0;
    if (!f)
        return 0;
    if (cJSON_IsString(f))
        return sy_parse_i64(f->valuestring, INT64_MIN, INT64_MAX, out);
    if (cJSON_IsNumber(f)) {
        *out = (int64_t)f->valuedouble;
        return 0;
    }
    return -EINVAL;
}

static int64_t header_revision(const cJSON *resp)
{
    int64_t rev = 0;

    get_i64(cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision", &rev);
    return rev;
}

/* The end of the range holding every key that starts with <key> (etcd's prefix rule:
 * the last byte that is not 0xff, plus one; "\0" when there is none). */
static void add_range_end(cJSON *obj, const char *key)
{
    size_t len = strlen(key);
    char *end = sy_xstrdup(key);

    while (len > 0 && (unsigned char)end[len - 1] == 0xff)
        len--;
    if (len == 0) {
        add_b64(obj, "range_end", "", 1);
    } else {
        end[len - 1] = (char)((unsigned char)end[len - 1] + 1);
        add_b64(obj, "range_end", end, len);
    }
    free(end);
}

static char *full_key(struct etcd_store *s, const char *key)
{
    return sy_xasprintf("%s%s", s->base.prefix, key);
}

static int check_key(const char *key, size_t value_len)
{
    size_t klen = strlen(key);

    if (klen == 0)
        return -EINVAL;
    if (klen > CP_STORE_MAX_KEY || value_len > CP_STORE_MAX_VALUE)
        return -E2BIG;
    return 0;
}

/* Turns an etcd kv object into <out>, the key without our prefix. Returns 0, -EINVAL when
 * the object is malformed or outside the prefix, or -ENOMEM. */
static int parse_kv(struct etcd_store *s, const cJSON *kv, struct cp_kv *out)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
    size_t plen = strlen(s->base.prefix), klen;
    char *key = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsString(k) || (v && !cJSON_IsString(v)))
        return -EINVAL;
    rc = b64_decode(k->valuestring, &key, &klen);
    if (rc < 0)
        return rc;
    if (klen < plen || strlen(key) != klen || strncmp(key, s->base.prefix, plen) != 0) {
        free(key);
        return -EINVAL;
    }
    memmove(key, key + plen, klen - plen + 1);
    out->key = key;
    if (v) {
        rc = b64_decode(v->valuestring, &out->value, &out->value_len);
    } else {
        out->value = strdup(""); /* an empty value is omitted on the wire */
        rc = out->value ? 0 : -ENOMEM;
    }
    if (rc == 0 && (get_i64(kv, "create_revision", &out->create_revision) < 0 ||
                    get_i64(kv, "mod_revision", &out->mod_revision) < 0))
        rc = -EINVAL;
    if (rc < 0) {
        free(out->key);
        free(out->value);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* ---- requests ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct etcd_buf *b = arg;
    size_t n = size * nmemb;

    if (b->len + n + 1 > ETCD_MAX_RESPONSE) {
        b->overflow = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->overflow = true;
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static int curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    default:
        return -EIO;
    }
}

/* Sets the options every request handle shares. */
static void setup_handle(CURL *h, struct curl_slist *headers)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
}

/* Maps an etcd error answer ({"error","code","message"}, gRPC codes) to an errno. */
static int answer_errno(long status, const cJSON *resp)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(resp, "code");
    int c = cJSON_IsNumber(code) ? code->valueint : -1;

    if (c == 3 || status == 400) /* InvalidArgument: "request is too large" etc. */
        return -EINVAL;
    if (c == 4) /* DeadlineExceeded */
        return -ETIMEDOUT;
    return -EIO;
}

/* POSTs <req> to <path> on the first endpoint that answers, starting with the one that
 * answered last. On success *resp is the parsed answer (caller frees). <read_only>
 * requests are retried on the next endpoint after any transport failure, writes only
 * when they never connected. Returns 0 or a negative errno; on failure the reason is
 * returned in *why when <why> is not NULL (caller frees, and logs as it sees fit), else
 * logged here. Caller must not hold mu. */
static int etcd_call(struct etcd_store *s, const char *path, const cJSON *req, bool read_only,
                     cJSON **resp, char **why)
{
    char *payload = cJSON_PrintUnformatted(req);
    char *reasons = NULL;
    long status = 0;
    int rc = -EIO;

    *resp = NULL;
    if (!payload)
        return -ENOMEM;
    pthread_mutex_lock(&s->mu);
    for (size_t tries = 0; tries < s->n_endpoints; tries++) {
        const char *ep = s->endpoints[s->cur];
        char *url = sy_xasprintf("%s%s", ep, path);
        curl_off_t connect_us = 0;
        CURLcode c;
        char *next;

        s->body.len = 0;
        s->body.overflow = false;
        curl_easy_setopt(s->curl, CURLOPT_URL, url);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
        c = curl_easy_perform(s->curl);
        free(url);
        if (c == CURLE_OK) {
            curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
            rc = 0;
            break;
        }
        rc = curl_errno(c);
        if (s->body.overflow)
            rc = -E2BIG;
        next = sy_xasprintf("%s%s%s: %s", reasons ? reasons : "", reasons ? "; " : "", ep,
                            s->body.overflow ? "answer too large" : curl_easy_strerror(c));
        free(reasons);
        reasons = next;
        curl_easy_getinfo(s->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
        if (!read_only && connect_us > 0)
            break; /* it may have been applied: do not send it again */
        s->cur = (s->cur + 1) % s->n_endpoints;
    }
    if (rc == 0) {
        const char *text = s->body.p ? s->body.p : "";
        *resp = cJSON_ParseWithLength(text, s->body.len);
        if (!*resp) {
            rc = -EIO;
            reasons = sy_xasprintf("%s%s: HTTP %ld, unparsable answer", s->endpoints[s->cur], path,
                                   status);
        } else if (status != 200) {
            const cJSON *msg = cJSON_GetObjectItemCaseSensitive(*resp, "message");
            if (!cJSON_IsString(msg))
                msg = cJSON_GetObjectItemCaseSensitive(*resp, "error");
            rc = answer_errno(status, *resp);
            reasons = sy_xasprintf("%s%s: HTTP %ld: %s", s->endpoints[s->cur], path, status,
                                   cJSON_IsString(msg) ? msg->valuestring : "(no message)");
            cJSON_Delete(*resp);
            *resp = NULL;
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(payload);
    if (rc < 0 && why) {
        *why = reasons ? reasons : sy_xstrdup(strerror(-rc));
        reasons = NULL;
    } else if (rc < 0) {
        sy_warn("%s failed: %s", path, reasons ? reasons : strerror(-rc));
    }
    free(reasons);
    return rc;
}

/* ---- operations ---- */

static int es_range_full(struct etcd_store *s, const char *key, bool prefix, bool count_only,
                         cJSON **resp, char **why)
{
    cJSON *req = cJSON_CreateObject();
    int rc;

    /* The empty prefix (no store prefix, range "") is every key: from "\0" to "\0". */
    add_b64(req, "key", key, key[0] ? strlen(key) : 1);
    if (prefix)
        add_range_end(req, key);
    if (count_only)
        cJSON_AddTrueToObject(req, "count_only");
    rc = etcd_call(s, "/v3/kv/range", req, true, resp, why);
    cJSON_Delete(req);
    return rc;
}

static int es_get(struct cp_store *base, const char *key, struct cp_kv **out)
{
    struct etcd_store *s = es_of(base);
    cJSON *resp = NULL;
    const cJSON *kvs;
    char *fk;
    int rc;

    *out = NULL;
    rc = check_key(key, 0);
    if (rc < 0)
        return rc;
    fk = full_key(s, key);
    rc = es_range_full(s, fk, false, false, &resp, NULL);
    free(fk);
    if (rc < 0)
        return rc;
    kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs"); /* absent when there is no key */
    if (cJSON_GetArraySize(kvs) < 1) {
        rc = -ENOENT;
    } else {
        struct cp_kv *kv = sy_xcalloc(1, sizeof(*kv));
        rc = parse_kv(s, cJSON_GetArrayItem(kvs, 0), kv);
        if (rc < 0) {
            sy_error("range %s: malformed kv in etcd's answer", key);
            free(kv);
            rc = rc == -ENOMEM ? rc : -EIO;
        } else {
            *out = kv;
        }
    }
    cJSON_Delete(resp);
    return rc;
}

static int es_range(struct cp_store *base, const char *prefix, struct cp_kv **out, size_t *n)
{
    struct etcd_store *s = es_of(base);
    struct cp_kv *kvs = NULL;
    cJSON *resp = NULL;
    const cJSON *arr;
    size_t count;
    char *fk;
    int rc;

    *out = NULL;
    *n = 0;
    fk = full_key(s, prefix);
    rc = es_range_full(s, fk, true, false, &resp, NULL);
    free(fk);
    if (rc < 0)
        return rc;
    arr = cJSON_GetObjectItemCaseSensitive(resp, "kvs");
    count = (size_t)cJSON_GetArraySize(arr);
    if (count > 0) {
        kvs = calloc(count, sizeof(*kvs));
        if (!kvs)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < count && rc == 0; i++) {
        rc = parse_kv(s, cJSON_GetArrayItem(arr, (int)i), &kvs[i]);
        if (rc == -EINVAL) {
            sy_error("range %s: malformed kv in etcd's answer", prefix);
            rc = -EIO;
        }
    }
    cJSON_Delete(resp);
    if (rc < 0) {
        cp_kv_array_free(kvs, count);
        return rc;
    }
    *out = kvs;
    *n = count;
    return 0;
}

static cJSON *put_request(struct etcd_store *s, const char *key, const char *value, size_t len)
{
    cJSON *put = cJSON_CreateObject();
    char *fk = full_key(s, key);

    add_b64(put, "key", fk, strlen(fk));
    add_b64(put, "value", value, len);
    free(fk);
    return put;
}

static int es_put(struct cp_store *base, const char *key, const char *value, size_t len,
                  int64_t *rev)
{
    struct etcd_store *s = es_of(base);
    cJSON *req, *resp = NULL;
    int rc;

    rc = check_key(key, len);
    if (rc < 0)
        return rc;
    req = put_request(s, key, value, len);
    rc = etcd_call(s, "/v3/kv/put", req, false, &resp, NULL);
    cJSON_Delete(req);
    if (rc == 0 && rev)
        *rev = header_revision(resp);
    cJSON_Delete(resp);
    return rc;
}

static int es_cas(struct cp_store *base, const char *key, const char *value, size_t len,
                  int64_t expected, int64_t *rev)
{
    struct etcd_store *s = es_of(base);
    cJSON *req, *cmp, *op, *resp = NULL;
    char *fk;
    int rc;

    rc = check_key(key, len);
    if (rc < 0)
        return rc;
    if (expected < 0)
        return -EINVAL;
    fk = full_key(s, key);
    req = cJSON_CreateObject();
    cmp = cJSON_CreateObject();
    if (expected > 0) {
        cJSON_AddStringToObject(cmp, "target", "MOD");
        add_i64(cmp, "mod_revision", expected);
    } else {
        cJSON_AddStringToObject(cmp, "target", "CREATE"); /* created at 0: absent */
        add_i64(cmp, "create_revision", 0);
    }
    cJSON_AddStringToObject(cmp, "result", "EQUAL");
    add_b64(cmp, "key", fk, strlen(fk));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "compare"), cmp);
    op = cJSON_CreateObject();
    cJSON_AddItemToObject(op, "request_put", put_request(s, key, value, len));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "success"), op);
    free(fk);

    rc = etcd_call(s, "/v3/kv/txn", req, false, &resp, NULL);
    cJSON_Delete(req);
    if (rc < 0)
        return rc;
    /* "succeeded" is omitted when false. */
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "succeeded")))
        rc = -EEXIST;
    else if (rev)
        *rev = header_revision(resp);
    cJSON_Delete(resp);
    return rc;
}

static int es_del(struct cp_store *base, const char *key)
{
    struct etcd_store *s = es_of(base);
    cJSON *req, *resp = NULL;
    char *fk;
    int rc;

    rc = check_key(key, 0);
    if (rc < 0)
        return rc;
    fk = full_key(s, key);
    req = cJSON_CreateObject();
    add_b64(req, "key", fk, strlen(fk));
    free(fk);
    rc = etcd_call(s, "/v3/kv/deleterange", req, false, &resp, NULL);
    cJSON_Delete(req);
    cJSON_Delete(resp);
    return rc;
}

static bool es_healthy(struct cp_store *base)
{
    struct etcd_store *s = es_of(base);
    cJSON *resp = NULL;
    char *why = NULL;
    int rc;

    /* A count-only range on our prefix: proves a quorum answers the API we use. Polled
     * by /readyz, so a failure is only a debug line; the callers of real work warn. */
    rc = es_range_full(s, s->base.prefix, true, true, &resp, &why);
    if (rc < 0)
        sy_debug("not healthy: %s", why);
    free(why);
    cJSON_Delete(resp);
    return rc == 0;
}

/* ---- leader election ---- */

/* POST /v3/lease/grant: a new lease of <ttl_s> seconds in *id. Returns 0 or -errno. */
static int lease_grant(struct etcd_store *s, int ttl_s, int64_t *id)
{
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    int rc;

    cJSON_AddNumberToObject(req, "TTL", ttl_s);
    rc = etcd_call(s, "/v3/lease/grant", req, false, &resp, NULL);
    cJSON_Delete(req);
    if (rc == 0 && (get_i64(resp, "ID", id) < 0 || *id == 0)) {
        sy_error("lease grant: no lease ID in etcd's answer");
        rc = -EIO;
    }
    cJSON_Delete(resp);
    return rc;
}

/* POST /v3/lease/keepalive: renews lease <id>; *alive says whether it still existed (etcd
 * answers an expired or unknown lease with a TTL of 0). Returns 0 or -errno. */
static int lease_keepalive(struct etcd_store *s, int64_t id, bool *alive)
{
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    int64_t ttl = 0;
    int rc;

    add_i64(req, "ID", id);
    /* Renewing twice is harmless, so it may be retried on another endpoint. */
    rc = etcd_call(s, "/v3/lease/keepalive", req, true, &resp, NULL);
    cJSON_Delete(req);
    if (rc == 0 && get_i64(cJSON_GetObjectItemCaseSensitive(resp, "result"), "TTL", &ttl) < 0)
        rc = -EIO;
    *alive = rc == 0 && ttl > 0;
    cJSON_Delete(resp);
    return rc;
}

/* Does the etcd kv object <kv> hold <id> under <lease>? */
static bool kv_is_ours(const cJSON *kv, const char *id, int64_t lease)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
    int64_t kv_lease = 0;
    char *value = NULL;
    size_t len = 0;
    bool ours;

    if (!cJSON_IsString(v) || get_i64(kv, "lease", &kv_lease) < 0 || kv_lease != lease)
        return false;
    if (b64_decode(v->valuestring, &value, &len) < 0)
        return false;
    ours = len == strlen(id) && memcmp(value, id, len) == 0;
    free(value);
    return ours;
}

/* One txn: creates <fk> = <id> with <lease> unless the key exists, and reads it when it
 * does. *ours: we created it now, or it already holds <id> under <lease> (we led before a
 * failed round). Returns 0 or -errno. */
static int try_acquire(struct etcd_store *s, const char *fk, const char *id, int64_t lease,
                       bool *ours)
{
    cJSON *req = cJSON_CreateObject(), *cmp = cJSON_CreateObject(), *op, *put, *get;
    cJSON *resp = NULL;
    const cJSON *r, *kvs;
    int rc;

    *ours = false;
    cJSON_AddStringToObject(cmp, "target", "CREATE");
    cJSON_AddStringToObject(cmp, "result", "EQUAL");
    add_b64(cmp, "key", fk, strlen(fk));
    add_i64(cmp, "create_revision", 0);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "compare"), cmp);
    put = cJSON_CreateObject();
    add_b64(put, "key", fk, strlen(fk));
    add_b64(put, "value", id, strlen(id));
    add_i64(put, "lease", lease);
    op = cJSON_CreateObject();
    cJSON_AddItemToObject(op, "request_put", put);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "success"), op);
    get = cJSON_CreateObject();
    add_b64(get, "key", fk, strlen(fk));
    op = cJSON_CreateObject();
    cJSON_AddItemToObject(op, "request_range", get);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "failure"), op);

    rc = etcd_call(s, "/v3/kv/txn", req, false, &resp, NULL);
    cJSON_Delete(req);
    if (rc < 0)
        return rc;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "succeeded"))) {
        *ours = true;
    } else {
        r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), 0);
        kvs = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "response_range"), "kvs");
        /* No kvs: the holder's lease expired between the compare and the read. The next
         * round will take the key. */
        *ours = kv_is_ours(cJSON_GetArrayItem(kvs, 0), id, lease);
    }
    cJSON_Delete(resp);
    return 0;
}

/* Reads <fk>: *ours when it holds <id> under <lease>. Returns 0 or -errno. */
static int holds_key(struct etcd_store *s, const char *fk, const char *id, int64_t lease,
                     bool *ours)
{
    cJSON *resp = NULL;
    int rc = es_range_full(s, fk, false, false, &resp, NULL);

    *ours =
        rc == 0 &&
        kv_is_ours(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "kvs"), 0), id, lease);
    cJSON_Delete(resp);
    return rc;
}

/* One round of <c>: renew (or get) its lease, then confirm or try to take the key. Caller
 * holds cmu. Returns 0 or -errno; c->leading is the outcome. */
static int campaign_round(struct etcd_store *s, struct etcd_campaign *c, const char *fk,
                          const char *id, int ttl_s)
{
    uint64_t t0 = sy_now_us();
    bool alive = false, ours = false;
    int rc;

    if (c->lease) {
        rc = lease_keepalive(s, c->lease, &alive);
        if (rc < 0)
            return rc;
        if (!alive) {
            if (c->leading)
                sy_warn("%s: our lease expired; no longer the leader", c->key);
            c->lease = 0;
            c->leading = false;
        }
    }
    if (!c->lease) {
        rc = lease_grant(s, ttl_s, &c->lease);
        if (rc < 0)
            return rc;
    }
    if (c->leading) {
        rc = holds_key(s, fk, id, c->lease, &ours);
        if (rc < 0)
            return rc;
        if (ours) {
            c->confirmed_us = t0;
            return 0;
        }
        sy_warn("%s: the key no longer holds our id; no longer the leader", c->key);
        c->leading = false;
    }
    rc = try_acquire(s, fk, id, c->lease, &ours);
    if (rc < 0)
        return rc;
    if (ours) {
        sy_info("%s: %s is the leader (lease %" PRId64 ", %d s)", c->key, id, c->lease, ttl_s);
        c->leading = true;
        c->confirmed_us = t0;
    }
    return 0;
}

/* The campaign for <key>, added when <add>; NULL when absent (or no room). Caller holds
 * cmu. */
static struct etcd_campaign *find_campaign(struct etcd_store *s, const char *key, bool add)
{
    for (size_t i = 0; i < s->n_camps; i++) {
        if (strcmp(s->camps[i].key, key) == 0)
            return &s->camps[i];
    }
    if (!add || s->n_camps == ETCD_MAX_CAMPAIGNS)
        return NULL;
    s->camps[s->n_camps].key = sy_xstrdup(key);
    return &s->camps[s->n_camps++];
}

static int es_campaign(struct cp_store *base, const char *key, const char *id, int ttl_s,
                       bool *leader)
{
    struct etcd_store *s = es_of(base);
    struct etcd_campaign *c;
    char *fk;
    int rc;

    *leader = false;
    rc = check_key(key, strlen(id));
    if (rc < 0 || ttl_s <= 0 || !id[0])
        return rc < 0 ? rc : -EINVAL;
    pthread_mutex_lock(&s->cmu);
    c = find_campaign(s, key, true);
    if (!c) {
        pthread_mutex_unlock(&s->cmu);
        return -ENOSPC;
    }
    fk = full_key(s, key);
    rc = campaign_round(s, c, fk, id, ttl_s);
    free(fk);
    /* Unconfirmed: the lease may run out at etcd while we cannot tell. Keep leading only
     * while the last confirmation is recent enough that the lease cannot have expired
     * (a second of margin for the clock and the request in flight). */
    if (rc < 0 && c->leading &&
        sy_now_us() - c->confirmed_us + 1000000u >= (uint64_t)ttl_s * 1000000u) {
        sy_warn("%s: leadership unconfirmed for %d s (%s); stepping down", c->key, ttl_s,
                strerror(-rc));
        c->leading = false;
    }
    *leader = c->leading;
    pthread_mutex_unlock(&s->cmu);
    return rc;
}

static int es_resign(struct cp_store *base, const char *key)
{
    struct etcd_store *s = es_of(base);
    struct etcd_campaign *c;
    cJSON *req, *resp = NULL;
    char *why = NULL;
    int rc = 0;

    pthread_mutex_lock(&s->cmu);
    c = find_campaign(s, key, false);
    if (c && c->lease) {
        req = cJSON_CreateObject();
        add_i64(req, "ID", c->lease);
        /* Revoking deletes every key attached to the lease: the next candidate's create
         * succeeds at once. A lease that already expired is "not found": nothing to do. */
        rc = etcd_call(s, "/v3/lease/revoke", req, false, &resp, &why);
        cJSON_Delete(req);
        cJSON_Delete(resp);
        if (rc < 0 && why && strstr(why, "lease not found"))
            rc = 0;
        if (rc < 0)
            sy_warn("%s: cannot revoke our lease: %s", key, why ? why : strerror(-rc));
        else if (c->leading)
            sy_info("%s: resigned", key);
        free(why);
        c->lease = 0;
        c->leading = false;
    }
    pthread_mutex_unlock(&s->cmu);
    return rc;
}

/* ---- the watch thread ---- */

/* Handles one line of the watch stream. Returns 0, or -1 to drop the stream. */
static int watch_line(struct etcd_store *s, const char *line, size_t len)
{
    const cJSON *result, *events, *ev;
    int64_t compact = 0, last = 0;
    cJSON *msg;
    int rc = 0;

    msg = cJSON_ParseWithLength(line, len);
    if (!msg) {
        sy_error("watch: unparsable line from etcd (%zu bytes)", len);
        return -1;
    }
    result = cJSON_GetObjectItemCaseSensitive(msg, "result");
    if (!result) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        sy_warn("watch: etcd error: %s", cJSON_IsString(m) ? m->valuestring : "(no message)");
        rc = -1;
        goto out_free;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "created"))) {
        s->wcreated = true;
        sy_debug("watch: stream open from revision %" PRId64, s->next_rev);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "canceled"))) {
        get_i64(result, "compact_revision", &compact);
        if (compact > s->next_rev) {
            sy_error("watch: revisions %" PRId64 "..%" PRId64 " were compacted away and "
                     "are lost to this watch; resuming at %" PRId64,
                     s->next_rev, compact - 1, compact);
            s->next_rev = compact;
        } else {
            sy_warn("watch: etcd cancelled the watch; reopening");
        }
        rc = -1;
        goto out_free;
    }
    events = cJSON_GetObjectItemCaseSensitive(result, "events");
    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
        bool deleted = cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0;
        struct cp_kv kv;

        if (parse_kv(s, cJSON_GetObjectItemCaseSensitive(ev, "kv"), &kv) < 0) {
            sy_error("watch: malformed event from etcd; skipped");
            continue;
        }
        /* Never hand the callback a revision twice, whatever etcd resends. */
        if (kv.mod_revision >= s->next_rev) {
            s->watch_cb(s->watch_arg, kv.key, deleted ? NULL : kv.value, deleted ? 0 : kv.value_len,
                        kv.mod_revision);
            if (kv.mod_revision > last)
                last = kv.mod_revision;
        }
        free(kv.key);
        free(kv.value);
    }
    /* One answer carries whole revisions; only now is everything up to <last> seen. */
    if (last >= s->next_rev)
        s->next_rev = last + 1;

out_free:
    cJSON_Delete(msg);
    return rc;
}

static size_t on_watch_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct etcd_store *s = arg;
    size_t n = size * nmemb;
    struct etcd_buf *b = &s->wline;
    char *nl;

    if (atomic_load(&s->stop))
        return 0;
    if (on_body(data, 1, n, b) != n) {
        sy_error("watch: a stream message over %u bytes; reopening", ETCD_MAX_RESPONSE);
        s->wfailed = true;
        return 0;
    }
    while ((nl = memchr(b->p, '\n', b->len))) {
        size_t line = (size_t)(nl - b->p);
        int rc = line > 0 ? watch_line(s, b->p, line) : 0;
        memmove(b->p, nl + 1, b->len - line - 1);
        b->len -= line + 1;
        b->p[b->len] = '\0';
        if (rc < 0) {
            s->wfailed = true;
            return 0;
        }
    }
    return n;
}

/* Runs one watch stream until it ends, fails or stop is set. Returns a reason (static). */
static const char *watch_stream(struct etcd_store *s, CURL *h)
{
    cJSON *req = cJSON_CreateObject(), *create = cJSON_CreateObject();
    const char *ep = s->endpoints[s->watch_ep];
    char *url = sy_xasprintf("%s/v3/watch", ep);
    const char *why = "stream ended";
    char *payload;
    CURLMsg *msg;
    int left;

    add_b64(create, "key", s->watch_key, s->watch_key[0] ? strlen(s->watch_key) : 1);
    add_range_end(create, s->watch_key);
    add_i64(create, "start_revision", s->next_rev);
    cJSON_AddItemToObject(req, "create_request", create);
    payload = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!payload) {
        free(url);
        return "out of memory";
    }

    s->wline.len = 0;
    s->wcreated = false;
    s->wfailed = false;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    curl_multi_add_handle(s->wmulti, h);
    while (!atomic_load(&s->stop)) {
        int running = 0;
        if (curl_multi_perform(s->wmulti, &running) != CURLM_OK || running == 0)
            break;
        curl_multi_poll(s->wmulti, NULL, 0, 1000, NULL);
    }
    while ((msg = curl_multi_info_read(s->wmulti, &left))) {
        if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK && !s->wfailed)
            why = curl_easy_strerror(msg->data.result);
    }
    if (s->wfailed)
        why = "bad message from etcd";
    curl_multi_remove_handle(s->wmulti, h);
    free(payload);
    free(url);
    return why;
}

static void *watch_main(void *arg)
{
    struct etcd_store *s = arg;
    int backoff = ETCD_BACKOFF_MIN_MS;
    CURL *h = curl_easy_init();

    if (!h) {
        sy_error("watch: cannot create a curl handle; no watch events will be delivered");
        return NULL;
    }
    setup_handle(h, s->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    /* A silent peer (partition, not a restart) is noticed through TCP keepalive. */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
    while (!atomic_load(&s->stop)) {
        const char *why = watch_stream(s, h);
        const char *was = s->endpoints[s->watch_ep];
        struct timespec until;

        if (atomic_load(&s->stop))
            break;
        if (s->wcreated)
            backoff = ETCD_BACKOFF_MIN_MS; /* it worked: a fresh failure, start over */
        else
            s->watch_ep = (s->watch_ep + 1) % s->n_endpoints;
        sy_warn("watch on %s: %s; reconnecting to %s in %d ms from revision %" PRId64, was, why,
                s->endpoints[s->watch_ep], backoff, s->next_rev);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)backoff * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&s->wmu);
        while (!atomic_load(&s->stop) &&
               pthread_cond_timedwait(&s->wcond, &s->wmu, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&s->wmu);
        backoff = backoff * 2 > ETCD_BACKOFF_MAX_MS ? ETCD_BACKOFF_MAX_MS : backoff * 2;
    }
    curl_easy_cleanup(h);
    return NULL;
}

static int es_watch(struct cp_store *base, const char *prefix, int64_t from_rev,
                    cp_store_watch_fn cb, void *arg)
{
    struct etcd_store *s = es_of(base);
    cJSON *resp = NULL;
    char *fk;
    int rc;

    if (!cb || from_rev < 0)
        return -EINVAL;
    pthread_mutex_lock(&s->mu);
    if (s->watching) {
        rc = -EBUSY;
    } else {
        rc = 0;
        s->watching = true; /* claimed: a concurrent second watch() gets -EBUSY */
        s->watch_ep = s->cur;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        return rc;
    fk = full_key(s, prefix);
    if (from_rev == 0) {
        /* "After now" is pinned to a revision here, so a write made right after watch()
         * returns is seen even if the stream is not open yet. */
        rc = es_range_full(s, fk, true, true, &resp, NULL);
        if (rc == 0)
            from_rev = header_revision(resp) + 1;
        cJSON_Delete(resp);
    }
    if (rc == 0) {
        s->wmulti = curl_multi_init();
        rc = s->wmulti ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        s->watch_key = fk;
        s->watch_cb = cb;
        s->watch_arg = arg;
        s->next_rev = from_rev;
        rc = -pthread_create(&s->thread, NULL, watch_main, s);
        if (rc == 0)
            return 0;
        s->watch_key = NULL;
    }
    curl_multi_cleanup(s->wmulti);
    s->wmulti = NULL;
    free(fk);
    pthread_mutex_lock(&s->mu);
    s->watching = false;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void es_free(struct cp_store *base)
{
    struct etcd_store *s = es_of(base);

    if (!s)
        return;
    if (s->watching) {
        atomic_store(&s->stop, true);
        curl_multi_wakeup(s->wmulti);
        pthread_mutex_lock(&s->wmu);
        pthread_cond_broadcast(&s->wcond);
        pthread_mutex_unlock(&s->wmu);
        pthread_join(s->thread, NULL);
    }
    curl_multi_cleanup(s->wmulti);
    curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    free(s->body.p);
    free(s->wline.p);
    free(s->watch_key);
    for (size_t i = 0; i < s->n_endpoints; i++)
        free(s->endpoints[i]);
    free(s->endpoints);
    for (size_t i = 0; i < s->n_camps; i++)
        free(s->camps[i].key);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->wcond);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->mu);
    free(s->base.prefix);
    free(s);
}

static const struct cp_store_ops etcd_ops = {
    .name = "etcd",
    .shared = true,
    .get = es_get,
    .range = es_range,
    .put = es_put,
    .cas = es_cas,
    .del = es_del,
    .watch = es_watch,
    .healthy = es_healthy,
    .campaign = es_campaign,
    .resign = es_resign,
    .free = es_free,
};

/* Splits "http://a:1,http://b:2" into s->endpoints. Returns 0 or -EINVAL with *errmsg. */
static int parse_endpoints(struct etcd_store *s, const char *list, char **errmsg)
{
    const char *p = list;

    for (;;) {
        size_t field = strcspn(p, ","), len = field;
        char *ep = sy_xstrndup(p, len);

        while (len > 0 && ep[len - 1] == '/')
            ep[--len] = '\0';
        if ((strncmp(ep, "http://", 7) != 0 || len <= 7) &&
            (strncmp(ep, "https://", 8) != 0 || len <= 8)) {
            *errmsg = sy_xasprintf("etcd endpoint \"%s\": expected http://HOST:PORT", ep);
            free(ep);
            return -EINVAL;
        }
        s->endpoints = sy_xrealloc(s->endpoints, (s->n_endpoints + 1) * sizeof(char *));
        s->endpoints[s->n_endpoints++] = ep;
        if (!p[field])
            return 0;
        p += field + 1;
    }
}

struct cp_store *cp_store_etcd_open(const char *endpoints, const char *prefix, char **errmsg)
{
    struct etcd_store *s;
    cJSON *resp = NULL;
    char *why = NULL;
    int rc;

    pthread_once(&curl_once, curl_init_once);
    s = sy_xcalloc(1, sizeof(*s));
    s->base.ops = &etcd_ops;
    s->base.prefix = sy_xstrdup(prefix ? prefix : "");
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    pthread_cond_init(&s->wcond, NULL);
    atomic_init(&s->stop, false);

    if (strlen(s->base.prefix) > CP_STORE_MAX_KEY) {
        *errmsg = sy_xasprintf("etcd key prefix is longer than %d bytes", CP_STORE_MAX_KEY);
        goto out_free;
    }
    if (parse_endpoints(s, endpoints, errmsg) < 0)
        goto out_free;
    s->curl = curl_easy_init();
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!s->curl || !s->headers) {
        *errmsg = sy_xasprintf("etcd: cannot initialise libcurl");
        goto out_free;
    }
    setup_handle(s->curl, s->headers);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, ETCD_REQUEST_TIMEOUT_MS);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &s->body);

    rc = es_range_full(s, s->base.prefix, true, true, &resp, &why);
    if (rc < 0) {
        *errmsg = sy_xasprintf("etcd: no endpoint answered (%s)", why ? why : strerror(-rc));
        free(why);
        goto out_free;
    }
    sy_info("etcd store on %s, prefix \"%s\", revision %" PRId64, s->endpoints[s->cur],
            s->base.prefix, header_revision(resp));
    cJSON_Delete(resp);
    return &s->base;

out_free:
    es_free(&s->base);
    return NULL;
}
