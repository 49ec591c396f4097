/* controlplane/cp_pricing.c - the pricing catalogue's thread: load, refresh, reconcile.
 *
 * The thread wakes every CP_PRICING_POLL_MS. It loads the catalogue when its refresh is due
 * and reconciles when the catalogue's SHA-256 or the active version differs from what it
 * last reconciled (or a failed reconcile is due for a retry). Everything it does blocks
 * (file reads, HTTP fetches, store writes), which is why it is not on the admin loop.
 *
 * Reconciling is idempotent: the catalogue's prices are applied to the active policy, and
 * only when that changes a model is a new version pushed; applying them to that version
 * changes nothing, so it does not loop. With several replicas on one store, each one runs
 * this; whichever goes first pushes, and the others then find nothing to change. To narrow
 * the race where two go at once, the version is stored staged and activated only while the
 * version it was built from is still active, and a replica does not answer a version pushed
 * from a different catalogue (another SHA-256 in its note) unless its own catalogue changed,
 * so replicas that briefly disagree about the catalogue do not take turns overriding each
 * other.
 *
 * Ownership: pr->cat (the current good catalogue) is replaced only by the thread, under
 * pr->lock; the thread reads it without the lock, other threads only under it. Everything
 * under "guarded by lock" is read by the admin loop through cp_pricing_state_json.
 */
#define SY_LOG_MODULE "pricing"

#include "cp_pricing.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "cp_policies.h"
#include "cp_reply.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_policy.h"
#include "sy_pricing.h"
#include "sy_util.h"

#define CP_PRICING_POLL_MS 500         /* how soon a new active version is noticed */
#define CP_PRICING_RETRY_US 5000000ull /* a failed reconcile is retried after this */
#define CP_PRICING_CONNECT_TIMEOUT_MS 5000L
#define CP_PRICING_FETCH_TIMEOUT_MS 30000L
#define CP_PRICING_NOTE_SHA 12     /* hex digits of the catalogue's SHA-256 in a note */
#define CP_PRICING_NOTE_NAMES 240  /* bytes of model names listed in a note */
#define CP_PRICING_NOTE_SOURCE 200 /* bytes of the source named in a note */
#define CP_PRICING_NOTE_PREFIX "pricing: catalogue "

struct cp_pricing {
    char *source;  /* as given */
    char *display; /* for logs, notes and the API: a URL without credentials or query */
    bool is_url;
    unsigned refresh_s;
    struct cp_policies *ps;
    pthread_t thread;
    bool started;
    atomic_bool stopping; /* also read by libcurl's progress callback */

    pthread_mutex_t lock;
    pthread_cond_t cond;       /* CLOCK_MONOTONIC; signalled to stop */
    struct sy_pricing *cat;    /* guarded by lock (the thread reads it without) */
    int64_t loaded_unix_ms;    /* guarded by lock: last successful load, 0 = never */
    int64_t attempt_unix_ms;   /* guarded by lock: last attempt, 0 = never */
    char *last_error;          /* guarded by lock: of the last attempt, NULL = it worked */
    char *reconcile_error;     /* guarded by lock: of the last reconcile, NULL = it worked */
    int64_t last_pushed;       /* guarded by lock: last version this replica pushed, 0 = none */
    int64_t reconciled_active; /* guarded by lock: active version last reconciled, 0 = none */

    /* The thread's own. */
    char applied_sha[65]; /* the catalogue last reconciled */
    int64_t applied_version;
    uint64_t retry_at_us; /* 0 = no retry pending */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static int64_t wall_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

static bool is_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* A URL as it may be shown: user:password@ and the query (which often carries a token)
 * left out. */
static char *display_source(const char *s)
{
    const char *host, *end, *at, *q;

    if (!is_url(s))
        return sy_xstrdup(s);
    host = strstr(s, "://") + 3;
    end = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(end - host));
    if (at)
        host = at + 1;
    q = strpbrk(host, "?#");
    return sy_xasprintf("%.*s%.*s%s", (int)(strstr(s, "://") + 3 - s), s,
                        (int)(q ? (size_t)(q - host) : strlen(host)), host, q ? "?..." : "");
}

/* Replaces *slot with a copy of <msg> (NULL clears it). Under pr->lock. */
static void set_str(char **slot, const char *msg)
{
    free(*slot);
    *slot = msg ? sy_xstrdup(msg) : NULL;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int read_file(const char *path, char **out, size_t *out_len, char **err)
{
    char *buf = NULL, ebuf[128];
    size_t len = 0, cap = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        *err = sy_xasprintf("%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
        return -errno;
    }
    for (;;) {
        if (len == cap) {
            if (cap > SY_PRICING_MAX_BYTES) {
                *err = sy_xasprintf("%s: larger than the limit of %u bytes", path,
                                    SY_PRICING_MAX_BYTES);
                goto out_fail;
            }
            cap = cap ? cap * 2 : 64 * 1024;
            buf = sy_xrealloc(buf, cap + 1); /* bounded: at most 2 x the limit */
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = sy_xasprintf("%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
            goto out_fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > SY_PRICING_MAX_BYTES) {
        *err = sy_xasprintf("%s: larger than the limit of %u bytes", path, SY_PRICING_MAX_BYTES);
        goto out_fail;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;

out_fail:
    free(buf);
    close(fd);
    return -EIO;
}

struct fetch {
    struct cp_pricing *pr;
    char *buf;
    size_t len;
    bool too_big;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct fetch *f = arg;
    size_t n = size * nmemb;

    if (n > SY_PRICING_MAX_BYTES - f->len) {
        f->too_big = true;
        return 0; /* aborts the transfer */
    }
    f->buf = sy_xrealloc(f->buf, f->len + n + 1);
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct fetch *f = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&f->pr->stopping) ? 1 : 0; /* non-zero aborts: shutting down */
}

static int fetch_url(struct cp_pricing *pr, char **out, size_t *out_len, char **err)
{
    struct fetch f = {.pr = pr};
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *easy = curl_easy_init();
    CURLcode cc;
    long status = 0;

    if (!easy) {
        *err = sy_xasprintf("GET %s: cannot create a libcurl handle", pr->display);
        return -ENOMEM;
    }
    curl_easy_setopt(easy, CURLOPT_URL, pr->source);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, CP_PRICING_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, CP_PRICING_FETCH_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SY_PRICING_MAX_BYTES);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, ""); /* size is checked after decoding */
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "switchyard-control/0.1");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &f);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, cerr);
    cc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(easy);
    if (f.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        *err = sy_xasprintf("GET %s: larger than the limit of %u bytes", pr->display,
                            SY_PRICING_MAX_BYTES);
        goto out_fail;
    }
    if (cc != CURLE_OK) {
        *err = sy_xasprintf("GET %s: %s", pr->display, cerr[0] ? cerr : curl_easy_strerror(cc));
        goto out_fail;
    }
    if (status < 200 || status > 299) {
        *err = sy_xasprintf("GET %s: HTTP status %ld", pr->display, status);
        goto out_fail;
    }
    *out = f.buf ? f.buf : sy_xstrdup("");
    *out_len = f.len;
    return 0;

out_fail:
    free(f.buf);
    return -EIO;
}

/* Reads and parses the catalogue; a good one replaces the current one. */
static void load(struct cp_pricing *pr)
{
    struct sy_pricing *cat = NULL, *old = NULL;
    char *buf = NULL, *err = NULL;
    size_t len = 0;
    bool changed = false, same_error;
    int rc;

    rc = pr->is_url ? fetch_url(pr, &buf, &len, &err) : read_file(pr->source, &buf, &len, &err);
    if (rc == 0)
        cat = sy_pricing_parse(buf, len, &err);
    free(buf);
    if (atomic_load(&pr->stopping)) {
        sy_pricing_free(cat);
        free(err);
        return;
    }

    pthread_mutex_lock(&pr->lock);
    pr->attempt_unix_ms = wall_ms();
    same_error = !cat && pr->last_error && err && strcmp(pr->last_error, err) == 0;
    if (cat) {
        changed = !pr->cat || strcmp(pr->cat->sha256, cat->sha256) != 0;
        old = pr->cat;
        pr->cat = cat;
        pr->loaded_unix_ms = pr->attempt_unix_ms;
        set_str(&pr->last_error, NULL);
    } else {
        set_str(&pr->last_error, err ? err : "unknown error");
    }
    pthread_mutex_unlock(&pr->lock);
    sy_pricing_free(old);

    if (cat && changed)
        sy_info("catalogue %s loaded: %zu entries (sha256 %.*s)", pr->display, cat->n_entries,
                CP_PRICING_NOTE_SHA, cat->sha256);
    else if (cat)
        sy_debug("catalogue %s unchanged (sha256 %.*s)", pr->display, CP_PRICING_NOTE_SHA,
                 cat->sha256);
    else if (!same_error) /* the same problem every refresh is logged once */
        sy_error("catalogue %s rejected, keeping the previous one:\n%s", pr->display,
                 err ? err : "unknown error");
    free(err);
}

/* ---- reconciling -------------------------------------------------------------------------- */

/* True when the active version <a> was pushed by a replica from a catalogue other than
 * <sha>: its note is ours ("pricing: catalogue ... (sha256 X) ...") with another X. */
static bool pushed_from_other_catalogue(const struct cp_active *a, const char *sha)
{
    const char *p;

    if (!a->note || strncmp(a->note, CP_PRICING_NOTE_PREFIX, strlen(CP_PRICING_NOTE_PREFIX)) != 0)
        return false;
    p = strstr(a->note, "(sha256 ");
    if (!p)
        return false;
    return strncmp(p + 8, sha, CP_PRICING_NOTE_SHA) != 0;
}

/* "a, b and 3 more" within CP_PRICING_NOTE_NAMES bytes. Caller frees. */
static char *join_names(char **names, size_t n)
{
    char *out = sy_xcalloc(1, CP_PRICING_NOTE_NAMES + 32);
    size_t len = 0, i;

    for (i = 0; i < n; i++) {
        size_t w = strlen(names[i]) + (i ? 2 : 0);

        if (len + w > CP_PRICING_NOTE_NAMES)
            break;
        len += (size_t)snprintf(out + len, CP_PRICING_NOTE_NAMES + 1 - len, "%s%s", i ? ", " : "",
                                names[i]);
    }
    if (i < n)
        snprintf(out + len, CP_PRICING_NOTE_NAMES + 32 - len, "%s%zu more", i ? " and " : "",
                 n - i);
    return out;
}

/* Applies <cat> to the active version <a>; pushes and activates the result when it differs.
 * Returns 0 (done, or nothing to do) or a negative errno with *err set. */
static int reconcile_active(struct cp_pricing *pr, const struct sy_pricing *cat,
                            const struct cp_active *a, char **err)
{
    struct sy_policy *pol, *next = NULL;
    char **names = NULL, *merged = NULL, *canonical = NULL, *note = NULL, *list;
    size_t n_names = 0;
    char hash[17];
    bool activated = false;
    int64_t v, rollback_of;
    int rc;

    pol = sy_policy_ref(a->policy);
    rc = sy_pricing_apply(cat, pol, &merged, &names, &n_names);
    if (rc < 0) {
        *err = sy_xasprintf("cannot apply the catalogue: %s", strerror(-rc));
        goto out_free;
    }
    if (!merged) {
        sy_debug("version %" PRId64 " already has the catalogue's prices", a->version);
        goto out_free;
    }
    /* What the control plane will store: the canonical form, and its hash. */
    next = sy_policy_compile(merged, strlen(merged), err);
    if (!next) {
        rc = -EINVAL;
        goto out_free;
    }
    canonical = sy_policy_to_json(next);
    if (!canonical || sy_sha256_hex16(canonical, strlen(canonical), hash) < 0) {
        *err = sy_xasprintf("out of memory");
        rc = -ENOMEM;
        goto out_free;
    }
    if (strcmp(hash, a->hash) == 0) /* another replica got there first */
        goto out_free;

    list = join_names(names, n_names);
    note = sy_xasprintf(CP_PRICING_NOTE_PREFIX "%.*s (sha256 %.*s) changed %zu model%s (%s) from "
                                               "version %" PRId64,
                        CP_PRICING_NOTE_SOURCE, pr->display, CP_PRICING_NOTE_SHA, cat->sha256,
                        n_names, n_names == 1 ? "" : "s", list, a->version);
    free(list);
    /* Staged first, activated only while <a> is still the active version: an operator's push
     * in between must not be overwritten by prices applied to the policy before it. */
    v = cp_policies_push(pr->ps, canonical, strlen(canonical), note, false, &activated, err);
    if (v < 0) {
        rc = (int)v;
        goto out_free;
    }
    if (cp_policies_active_version(pr->ps) != a->version) {
        sy_info("version %" PRId64 " left staged: the active version changed while it was built",
                v);
        goto out_free;
    }
    v = cp_policies_activate(pr->ps, v, &rollback_of, err);
    if (v < 0) {
        rc = (int)v;
        goto out_free;
    }
    pthread_mutex_lock(&pr->lock);
    pr->last_pushed = v;
    pthread_mutex_unlock(&pr->lock);
    sy_info("version %" PRId64 " is active: %s", v, note);

out_free:
    free(note);
    free(canonical);
    sy_policy_unref(next);
    free(merged);
    sy_pricing_names_free(names, n_names);
    sy_policy_unref(pol);
    return rc;
}

/* Reconciles when the catalogue or the active version changed since the last time. */
static void maybe_reconcile(struct cp_pricing *pr)
{
    const struct sy_pricing *cat = pr->cat; /* only this thread replaces it */
    struct cp_active *a;
    bool cat_changed, retry;
    char *err = NULL;
    int rc = 0;

    if (!cat)
        return;
    a = cp_policies_active(pr->ps);
    if (!a) /* nothing to price yet: the first pushed version will be */
        return;
    cat_changed = strcmp(pr->applied_sha, cat->sha256) != 0;
    retry = pr->retry_at_us && sy_now_us() >= pr->retry_at_us;
    if (!cat_changed && !retry && a->version == pr->applied_version) {
        cp_active_unref(a);
        return;
    }
    if (!cat_changed && !retry && pushed_from_other_catalogue(a, cat->sha256)) {
        sy_info("version %" PRId64 " has prices from another catalogue; not overriding them "
                "until ours changes",
                a->version);
    } else {
        rc = reconcile_active(pr, cat, a, &err);
    }
    if (rc < 0) {
        sy_error("cannot apply catalogue %s to version %" PRId64 " (retrying in %llu s): %s",
                 pr->display, a->version, CP_PRICING_RETRY_US / 1000000, err ? err : "?");
        pr->retry_at_us = sy_now_us() + CP_PRICING_RETRY_US;
    } else {
        pr->retry_at_us = 0;
    }
    /* Recorded even after a failure: the retry timer, not every poll, tries again. */
    memcpy(pr->applied_sha, cat->sha256, sizeof(pr->applied_sha));
    pr->applied_version = a->version;
    pthread_mutex_lock(&pr->lock);
    set_str(&pr->reconcile_error, rc < 0 ? (err ? err : "unknown error") : NULL);
    pr->reconciled_active = a->version;
    pthread_mutex_unlock(&pr->lock);
    free(err);
    cp_active_unref(a);
}

/* ---- the thread --------------------------------------------------------------------------- */

static void deadline_after_ms(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *run(void *arg)
{
    struct cp_pricing *pr = arg;
    uint64_t next_load = 0;
    struct timespec ts;

    while (!atomic_load(&pr->stopping)) {
        if (sy_now_us() >= next_load) {
            load(pr);
            next_load = sy_now_us() + (uint64_t)pr->refresh_s * 1000000u;
        }
        if (atomic_load(&pr->stopping))
            break;
        maybe_reconcile(pr);
        pthread_mutex_lock(&pr->lock);
        deadline_after_ms(&ts, CP_PRICING_POLL_MS);
        if (!atomic_load(&pr->stopping))
            pthread_cond_timedwait(&pr->cond, &pr->lock, &ts);
        pthread_mutex_unlock(&pr->lock);
    }
    return NULL;
}

/* ---- API ---------------------------------------------------------------------------------- */

struct cp_pricing *cp_pricing_new(const char *source, unsigned refresh_s, struct cp_policies *ps)
{
    struct cp_pricing *pr;
    pthread_condattr_t ca;

    if (refresh_s < 1 || refresh_s > CP_PRICING_MAX_REFRESH_S || !source || !*source)
        return NULL;
    pr = sy_xcalloc(1, sizeof(*pr));
    pr->source = sy_xstrdup(source);
    pr->display = display_source(source);
    pr->is_url = is_url(source);
    pr->refresh_s = refresh_s;
    pr->ps = ps;
    atomic_init(&pr->stopping, false);
    pthread_mutex_init(&pr->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pr->cond, &ca);
    pthread_condattr_destroy(&ca);
    return pr;
}

int cp_pricing_start(struct cp_pricing *pr)
{
    int rc = pthread_create(&pr->thread, NULL, run, pr);

    if (rc != 0)
        return -rc;
    pr->started = true;
    sy_info("catalogue %s: refreshed every %u s", pr->display, pr->refresh_s);
    return 0;
}

void cp_pricing_free(struct cp_pricing *pr)
{
    if (!pr)
        return;
    if (pr->started) {
        pthread_mutex_lock(&pr->lock);
        atomic_store(&pr->stopping, true);
        pthread_cond_signal(&pr->cond);
        pthread_mutex_unlock(&pr->lock);
        pthread_join(pr->thread, NULL);
    }
    sy_pricing_free(pr->cat);
    free(pr->last_error);
    free(pr->reconcile_error);
    free(pr->source);
    free(pr->display);
    pthread_cond_destroy(&pr->cond);
    pthread_mutex_destroy(&pr->lock);
    free(pr);
}

/* <v> when it is set (> 0), else null. */
static void add_opt_num(cJSON *o, const char *key, int64_t v)
{
    if (v > 0)
        cJSON_AddNumberToObject(o, key, (double)v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_opt_str(cJSON *o, const char *key, const char *s)
{
    if (s)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *cp_pricing_state_json(struct cp_pricing *pr)
{
    cJSON *root = cJSON_CreateObject(), *models, *rec;

    pthread_mutex_lock(&pr->lock);
    cJSON_AddStringToObject(root, "source", pr->display);
    cJSON_AddNumberToObject(root, "refresh_s", pr->refresh_s);
    add_opt_num(root, "loaded_unix_ms", pr->loaded_unix_ms);
    add_opt_num(root, "last_attempt_unix_ms", pr->attempt_unix_ms);
    add_opt_str(root, "sha256", pr->cat ? pr->cat->sha256 : NULL);
    add_opt_str(root, "last_error", pr->last_error);
    models = sy_pricing_entries_json(pr->cat);
    if (models)
        cJSON_AddItemToObject(root, "models", models);
    else
        cJSON_AddArrayToObject(root, "models");
    rec = cJSON_AddObjectToObject(root, "reconcile");
    add_opt_num(rec, "active_version", pr->reconciled_active);
    add_opt_num(rec, "last_pushed_version", pr->last_pushed);
    add_opt_str(rec, "last_error", pr->reconcile_error);
    pthread_mutex_unlock(&pr->lock);
    return root;
}

void cp_pricing_on_admin(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_pricing *pr = arg;

    if (*rest) {
        cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
        return;
    }
    if (sy_http_req_method(req) != SY_HTTP_GET) {
        cp_reply_error(req, 405, "method_not_allowed", "use GET on /v1/pricing");
        return;
    }
    if (!pr) {
        cp_reply_error(req, 404, "pricing_not_configured",
                       "no pricing catalogue is configured (start switchyard-control with "
                       "--pricing FILE|URL)");
        return;
    }
    cp_reply_json(req, 200, cp_pricing_state_json(pr));
}
