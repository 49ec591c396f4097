/* controlplane/cp_peers.c - peer replicas: registration and parallel GETs. See cp_peers.h. */
#define SY_LOG_MODULE "peers"

#include "cp_peers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "cp_reply.h"
#include "cp_store.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_util.h"

#define ROUND_MS 1000
#define MAX_PEERS 64
#define MAX_BODY (4u * 1024 * 1024)
#define MAX_JOBS 8 /* fan-outs in flight; more answer from this replica alone */

struct peer {
    char *id, *url;
};

/* Called on the main loop with every peer's reply; they are freed after it returns. */
typedef void (*done_fn)(void *arg, const struct cp_peer_reply *replies, size_t n);

/* One peers_get: its thread, what it asked and got, and its way back to the main loop. */
struct job {
    struct cp_peers *owner;
    struct job *next;
    pthread_t thread;
    bool threaded; /* thread started (else the replies say why not) */
    struct event *ev;
    char *path;
    struct cp_peer_reply *replies;
    size_t n;
    done_fn done;
    void *arg;
};

struct cp_peers {
    struct event_base *base;
    struct cp_store *store;
    char *id, *url, key[256];
    pthread_t thread;
    bool started, registered;
    atomic_bool stopping;
    pthread_mutex_t lock; /* peers, and the registry thread's sleep */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC */
    struct peer *peers;
    size_t n_peers;
    struct job *jobs; /* in flight; main thread */
    size_t n_jobs;
};

static void peers_clear(struct peer *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        free(v[i].url);
    }
    free(v);
}

/* ---- registry ------------------------------------------------------------------------- */

static void round_once(struct cp_peers *p)
{
    struct cp_kv *kvs = NULL;
    struct peer *v;
    size_t n = 0, m = 0;
    bool held = false;
    int rc;

    if (p->url[0]) {
        rc = cp_store_campaign(p->store, p->key, p->url, CP_PEERS_TTL_S, &held);
        if (!held && p->registered)
            sy_warn("this replica's registration (%s) lapsed: %s", p->key,
                    rc < 0 ? strerror(-rc) : "held by another replica with the same --id");
        else if (held && !p->registered)
            sy_info("registered as %s for the other replicas' fleet views", p->url);
        p->registered = held;
    }
    rc = cp_store_range(p->store, CP_PEERS_PREFIX, &kvs, &n);
    if (rc < 0) {
        sy_debug("cannot list the replicas: %s", strerror(-rc));
        return; /* keep the last list */
    }
    v = sy_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n && m < MAX_PEERS; i++) {
        const char *id = kvs[i].key + strlen(CP_PEERS_PREFIX);
        if (strcmp(id, p->id) == 0 || kvs[i].value_len == 0 ||
            memchr(kvs[i].value, 0, kvs[i].value_len))
            continue;
        v[m].id = sy_xstrdup(id);
        v[m].url = sy_xstrndup(kvs[i].value, kvs[i].value_len);
        m++;
    }
    cp_kv_array_free(kvs, n);
    pthread_mutex_lock(&p->lock);
    peers_clear(p->peers, p->n_peers);
    p->peers = v;
    p->n_peers = m;
    pthread_mutex_unlock(&p->lock);
}

static void *registry(void *arg)
{
    struct cp_peers *p = arg;

    while (!atomic_load(&p->stopping)) {
        struct timespec ts;

        round_once(p);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ROUND_MS / 1000;
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->stopping))
            pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

struct cp_peers *cp_peers_new(struct event_base *base, struct cp_store *store, const char *id,
                              const char *admin_url)
{
    struct cp_peers *p;
    pthread_condattr_t ca;

    if (!base || !store || !id || !id[0] || strlen(id) > 128)
        return NULL;
    p = sy_xcalloc(1, sizeof(*p));
    p->base = base;
    p->store = store;
    p->id = sy_xstrdup(id);
    p->url = sy_xstrdup(admin_url ? admin_url : "");
    snprintf(p->key, sizeof(p->key), "%s%s", CP_PEERS_PREFIX, id);
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

int cp_peers_start(struct cp_peers *p)
{
    int rc;

    if (!p->store->ops->shared)
        return 0; /* only this process can use the store: no peers */
    rc = pthread_create(&p->thread, NULL, registry, p);
    if (rc != 0)
        return -rc;
    p->started = true;
    return 0;
}

const char *cp_peers_self(const struct cp_peers *p)
{
    return p->id;
}

static cJSON *summary(const struct cp_peers *p, const struct cp_peer_reply *replies,
                      const char *const *why, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ok = cJSON_AddArrayToObject(o, "answered");
    cJSON *bad = cJSON_AddArrayToObject(o, "unreachable");

    cJSON_AddItemToArray(ok, cJSON_CreateString(p->id));
    for (size_t i = 0; i < n; i++) {
        cJSON *e;
        if (!why[i]) {
            cJSON_AddItemToArray(ok, cJSON_CreateString(replies[i].id));
            continue;
        }
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", replies[i].id);
        cJSON_AddStringToObject(e, "url", replies[i].url);
        cJSON_AddStringToObject(e, "error", why[i]);
        cJSON_AddItemToArray(bad, e);
    }
    return o;
}

static cJSON *summary_local(struct cp_peers *p, const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *bad;

    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "answered"), cJSON_CreateString(p->id));
    bad = cJSON_AddArrayToObject(o, "unreachable");
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; why && i < p->n_peers; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", p->peers[i].id);
        cJSON_AddStringToObject(e, "url", p->peers[i].url);
        cJSON_AddStringToObject(e, "error", why);
        cJSON_AddItemToArray(bad, e);
    }
    pthread_mutex_unlock(&p->lock);
    return o;
}

static const char *failure(const struct cp_peer_reply *r, char **buf)
{
    *buf = NULL;
    if (r->status == 0)
        return r->error ? r->error : "no answer";
    if (r->status != 200)
        return *buf = sy_xasprintf("HTTP %d", r->status);
    return NULL;
}

/* ---- parallel GETs -------------------------------------------------------------------- */

struct fetch {
    CURL *h;
    struct cp_peer_reply *r;
    bool done;
    char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cp_peer_reply *r = arg;
    size_t len = size * nmemb;

    if (r->len + len > MAX_BODY)
        return 0; /* ends the transfer with an error */
    r->body = sy_xrealloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static void *fetch_all(void *arg)
{
    struct job *j = arg;
    struct fetch *f = sy_xcalloc(j->n + 1, sizeof(*f));
    CURLM *m = curl_multi_init();
    int running = 0;

    for (size_t i = 0; i < j->n; i++) {
        char *url = sy_xasprintf("%s%s", j->replies[i].url, j->path);
        f[i].r = &j->replies[i];
        f[i].h = curl_easy_init();
        curl_easy_setopt(f[i].h, CURLOPT_URL, url);
        curl_easy_setopt(f[i].h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(f[i].h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(f[i].h, CURLOPT_CONNECTTIMEOUT_MS, (long)CP_PEERS_TIMEOUT_MS / 3);
        curl_easy_setopt(f[i].h, CURLOPT_TIMEOUT_MS, (long)CP_PEERS_TIMEOUT_MS);
        curl_easy_setopt(f[i].h, CURLOPT_MAXFILESIZE, (long)MAX_BODY);
        curl_easy_setopt(f[i].h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(f[i].h, CURLOPT_WRITEDATA, f[i].r);
        curl_easy_setopt(f[i].h, CURLOPT_ERRORBUFFER, f[i].errbuf);
        curl_easy_setopt(f[i].h, CURLOPT_PRIVATE, &f[i]);
        free(url);
        curl_multi_add_handle(m, f[i].h);
    }
    do {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    } while (running);
    for (;;) {
        int left;
        CURLMsg *msg = curl_multi_info_read(m, &left);
        struct fetch *x = NULL;

        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->done = true;
        if (msg->data.result != CURLE_OK)
            x->r->error =
                sy_xstrdup(x->errbuf[0] ? x->errbuf : curl_easy_strerror(msg->data.result));
    }
    for (size_t i = 0; i < j->n; i++) {
        long status = 0;

        curl_easy_getinfo(f[i].h, CURLINFO_RESPONSE_CODE, &status);
        if (!f[i].done && !f[i].r->error)
            f[i].r->error = sy_xstrdup("the transfer did not finish");
        f[i].r->status = f[i].r->error ? 0 : (int)status;
        curl_multi_remove_handle(m, f[i].h);
        curl_easy_cleanup(f[i].h);
    }
    curl_multi_cleanup(m);
    free(f);
    event_active(j->ev, 0, 0); /* back to the main loop */
    return NULL;
}

static void job_finish(struct job *j)
{
    struct job **pp = &j->owner->jobs;

    if (j->threaded)
        pthread_join(j->thread, NULL);
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = j->next;
        j->owner->n_jobs--;
    }
    j->done(j->arg, j->replies, j->n);
    for (size_t i = 0; i < j->n; i++) {
        free(j->replies[i].id);
        free(j->replies[i].url);
        free(j->replies[i].body);
        free(j->replies[i].error);
    }
    free(j->replies);
    free(j->path);
    event_free(j->ev);
    free(j);
}

static void on_fetched(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_finish(arg);
}

static bool peers_get(struct cp_peers *p, const char *path, done_fn done, void *arg)
{
    struct job *j;

    pthread_mutex_lock(&p->lock);
    if (p->n_peers == 0 || p->n_jobs >= MAX_JOBS) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    j = sy_xcalloc(1, sizeof(*j));
    j->replies = sy_xcalloc(p->n_peers, sizeof(*j->replies));
    j->n = p->n_peers;
    for (size_t i = 0; i < p->n_peers; i++) {
        j->replies[i].id = sy_xstrdup(p->peers[i].id);
        j->replies[i].url = sy_xstrdup(p->peers[i].url);
    }
    pthread_mutex_unlock(&p->lock);
    j->owner = p;
    j->path = sy_xstrdup(path);
    j->done = done;
    j->arg = arg;
    j->ev = event_new(p->base, -1, 0, on_fetched, j);
    if (!j->ev)
        abort(); /* as sy_xmalloc does when memory runs out */
    if (pthread_create(&j->thread, NULL, fetch_all, j) != 0) {
        /* No thread: every peer is reported unreachable, on the loop like an answer. */
        for (size_t i = 0; i < j->n; i++)
            j->replies[i].error = sy_xstrdup("cannot start a thread for the request");
        event_active(j->ev, 0, 0);
    } else {
        j->threaded = true;
    }
    j->next = p->jobs;
    p->jobs = j;
    p->n_jobs++;
    return true;
}

void cp_peers_withdraw(struct cp_peers *p)
{
    if (!p || !p->started)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stopping, true);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    p->started = false;
    /* Even when the last round did not confirm it: a lost answer may have renewed it. */
    if (p->url[0])
        cp_store_resign(p->store, p->key); /* peers stop asking at once */
}

void cp_peers_free(struct cp_peers *p)
{
    if (!p)
        return;
    cp_peers_withdraw(p);
    while (p->jobs)
        job_finish(p->jobs);
    peers_clear(p->peers, p->n_peers);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->id);
    free(p->url);
    free(p);
}

/* ---- answers to admin requests -------------------------------------------------------- */

#define BUSY "not asked: too many requests to the other replicas are in flight"

struct answer {
    struct cp_peers *p;
    struct sy_http_req *req; /* NULL once the client left */
    cp_peers_build_fn build;
    void *ctx;
};

static void answer_abort(struct sy_http_req *req, void *arg)
{
    (void)req;
    ((struct answer *)arg)->req = NULL;
}

static void answer_peers(void *arg, const struct cp_peer_reply *replies, size_t n)
{
    struct answer *a = arg;
    const char **why = sy_xcalloc(n + 1, sizeof(*why));
    char **bufs = sy_xcalloc(n + 1, sizeof(*bufs));
    cJSON *root;

    if (a->req) { /* else the client left, or the control plane is stopping */
        for (size_t i = 0; i < n; i++)
            why[i] = failure(&replies[i], &bufs[i]);
        root = a->build(a->ctx, replies, why, n);
        cJSON_AddItemToObject(root, "replicas", summary(a->p, replies, why, n));
        cp_reply_json(a->req, 200, root);
    }
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(why);
    free(a->ctx);
    free(a);
}

void cp_peers_answer(struct cp_peers *p, struct sy_http_req *req, const char *path,
                     cp_peers_build_fn build, const void *ctx, size_t ctx_len)
{
    char scope[16] = "fleet";
    bool fleet;
    cJSON *root;

    cp_query_param(sy_http_req_query(req), "scope", scope, sizeof(scope));
    fleet = strcmp(scope, "fleet") == 0;
    if (!fleet && strcmp(scope, "replica") != 0) {
        cp_reply_error(req, 400, "invalid_scope", "scope \"%.40s\" is not one of: fleet, replica",
                       scope);
        return;
    }
    if (fleet && p) {
        struct answer *a = sy_xcalloc(1, sizeof(*a));
        *a = (struct answer){.p = p, .req = req, .build = build, .ctx = sy_xmalloc(ctx_len)};
        memcpy(a->ctx, ctx, ctx_len);
        sy_http_req_on_abort(req, answer_abort, a);
        if (peers_get(p, path, answer_peers, a))
            return;
        sy_http_req_on_abort(req, NULL, NULL);
        free(a->ctx);
        free(a);
    }
    root = build((void *)ctx, NULL, NULL, 0);
    if (p) /* the peers known here were not asked: too many fan-outs in flight */
        cJSON_AddItemToObject(root, "replicas", summary_local(p, fleet ? BUSY : NULL));
    cp_reply_json(req, 200, root);
}
