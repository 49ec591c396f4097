/* tui/tui_fetch.c - GETs against the admin API with libcurl's multi interface. See
 * tui_fetch.h.
 *
 * A slot per source holds its easy handle, its reply buffer and the window it asked for
 * (the window may change while the request is out; the reply is filed under the window it
 * answers). Failures are worded for an operator reading a status line: "connection
 * refused", "no answer within 900 ms", not curl's error codes.
 */
#include "tui_fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

#define TUI_USER_AGENT "switchyard-top/0.1.0"

struct slot {
    CURL *easy;
    bool busy;
    char window[8];
    char errbuf[CURL_ERROR_SIZE];
    char *buf;
    size_t len;
    size_t cap;
    int err; /* -EFBIG once the reply outgrew TUI_MAX_REPLY, -ENOMEM */
};

struct tui_client {
    char *server;
    long connect_ms, total_ms; /* per request */
    CURLM *multi;
    struct curl_slist *headers;
    struct slot slots[TUI_SRC_COUNT];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct slot *s = arg;
    size_t n = size * nmemb;

    if (n > TUI_MAX_REPLY - s->len) {
        s->err = -EFBIG;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        char *p;

        while (cap < s->len + n + 1)
            cap *= 2;
        p = realloc(s->buf, cap);
        if (!p) {
            s->err = -ENOMEM;
            return 0;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

struct tui_client *tui_client_new(const char *server)
{
    struct tui_client *c = sy_xcalloc(1, sizeof(*c));
    struct curl_slist *h;

    c->server = sy_xstrdup(server);
    c->connect_ms = TUI_CONNECT_TIMEOUT_MS;
    c->total_ms = TUI_REQUEST_TIMEOUT_MS;
    c->multi = curl_multi_init();
    if (!c->multi)
        goto out_free_client;
    h = curl_slist_append(NULL, "Accept: application/json");
    if (!h)
        goto out_free_client;
    c->headers = h;
    for (size_t i = 0; i < TUI_SRC_COUNT; i++) {
        CURL *e = curl_easy_init();

        if (!e)
            goto out_free_client;
        c->slots[i].easy = e;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(e, CURLOPT_USERAGENT, TUI_USER_AGENT);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, TUI_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TUI_REQUEST_TIMEOUT_MS);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->slots[i].errbuf);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->slots[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &c->slots[i]);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    }
    return c;

out_free_client:
    tui_client_free(c);
    return NULL;
}

void tui_client_free(struct tui_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < TUI_SRC_COUNT; i++) {
        struct slot *s = &c->slots[i];

        if (s->busy)
            curl_multi_remove_handle(c->multi, s->easy);
        curl_easy_cleanup(s->easy);
        free(s->buf);
    }
    curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    free(c->server);
    free(c);
}

void tui_client_set_timeouts(struct tui_client *c, long connect_ms, long total_ms)
{
    c->connect_ms = connect_ms;
    c->total_ms = total_ms;
    for (size_t i = 0; i < TUI_SRC_COUNT; i++) {
        curl_easy_setopt(c->slots[i].easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        curl_easy_setopt(c->slots[i].easy, CURLOPT_TIMEOUT_MS, total_ms);
    }
}

int tui_client_start(struct tui_client *c, unsigned mask, const char *window)
{
    int started = 0;

    for (size_t i = 0; i < TUI_SRC_COUNT; i++) {
        struct slot *s = &c->slots[i];
        char pbuf[64];
        char *url;

        if (!(mask & TUI_SRC_BIT(i)) || s->busy)
            continue;
        snprintf(s->window, sizeof(s->window), "%s", window);
        url = sy_xasprintf("%s%s", c->server, tui_src_path(i, s->window, pbuf, sizeof(pbuf)));
        curl_easy_setopt(s->easy, CURLOPT_URL, url);
        free(url);
        s->len = 0;
        s->err = 0;
        s->errbuf[0] = '\0';
        if (curl_multi_add_handle(c->multi, s->easy) != CURLM_OK)
            return -ENOMEM;
        s->busy = true;
        started++;
    }
    return started;
}

bool tui_client_busy(const struct tui_client *c)
{
    for (size_t i = 0; i < TUI_SRC_COUNT; i++)
        if (c->slots[i].busy)
            return true;
    return false;
}

/* Words a failed transfer of <s> for the status line into <buf>. */
static const char *describe_failure(const struct tui_client *c, struct slot *s, CURLcode rc,
                                    char *buf, size_t size)
{
    long os_errno = 0;
    double connect_s = 0.0;

    curl_easy_getinfo(s->easy, CURLINFO_OS_ERRNO, &os_errno);
    curl_easy_getinfo(s->easy, CURLINFO_CONNECT_TIME, &connect_s);
    if (s->err == -EFBIG) {
        snprintf(buf, size, "reply larger than %u MiB", TUI_MAX_REPLY / (1024 * 1024));
        return buf;
    }
    if (s->err == -ENOMEM) {
        snprintf(buf, size, "out of memory reading the reply");
        return buf;
    }
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            snprintf(buf, size, "connection refused");
        else if (os_errno)
            snprintf(buf, size, "cannot connect (%s)", strerror((int)os_errno));
        else
            snprintf(buf, size, "cannot connect");
        return buf;
    case CURLE_OPERATION_TIMEDOUT:
        if (connect_s <= 0.0)
            snprintf(buf, size, "no connection within %ld ms", c->connect_ms);
        else
            snprintf(buf, size, "no answer within %ld ms", c->total_ms);
        return buf;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(buf, size, "cannot resolve the host name");
        return buf;
    case CURLE_GOT_NOTHING:
        snprintf(buf, size, "connection closed without an answer");
        return buf;
    default:
        break;
    }
    if (s->errbuf[0]) {
        size_t n = strlen(s->errbuf);

        while (n > 0 && (s->errbuf[n - 1] == '\n' || s->errbuf[n - 1] == ' '))
            s->errbuf[--n] = '\0';
        snprintf(buf, size, "%s", s->errbuf);
    } else {
        snprintf(buf, size, "%s", curl_easy_strerror(rc));
    }
    return buf;
}

/* Applies every finished transfer to <m>. Returns how many finished. */
static int collect(struct tui_client *c, struct tui_model *m)
{
    int finished = 0;
    int left;
    CURLMsg *msg;

    while ((msg = curl_multi_info_read(c->multi, &left))) {
        struct slot *s = NULL;
        char why[CURL_ERROR_SIZE + 64];
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        int64_t now_ms = (int64_t)(sy_wall_us() / 1000);
        long status = 0;
        char *priv = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        s = (struct slot *)(void *)priv;
        curl_multi_remove_handle(c->multi, easy);
        if (!s)
            continue;
        s->busy = false;
        finished++;
        if (rc != CURLE_OK) {
            tui_model_apply(m, (enum tui_src)(s - c->slots), s->window,
                            describe_failure(c, s, rc, why, sizeof(why)), 0, NULL, 0, now_ms);
            continue;
        }
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        tui_model_apply(m, (enum tui_src)(s - c->slots), s->window, NULL, status,
                        s->len ? s->buf : "", s->len, now_ms);
    }
    return finished;
}

int tui_client_poll(struct tui_client *c, int fd, int timeout_ms, struct tui_model *m)
{
    struct curl_waitfd extra = {.fd = fd, .events = CURL_WAIT_POLLIN, .revents = 0};
    int running = 0;

    if (curl_multi_poll(c->multi, fd >= 0 ? &extra : NULL, fd >= 0 ? 1 : 0, timeout_ms, NULL) !=
        CURLM_OK)
        return -EIO;
    if (curl_multi_perform(c->multi, &running) != CURLM_OK)
        return -EIO;
    return collect(c, m);
}

int tui_client_fetch(struct tui_client *c, unsigned mask, const char *window, struct tui_model *m)
{
    int rc = tui_client_start(c, mask, window);

    if (rc < 0)
        return rc;
    while (tui_client_busy(c)) {
        rc = tui_client_poll(c, -1, 100, m);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < TUI_SRC_COUNT; i++) {
        if (!(mask & TUI_SRC_BIT(i)) || !m->src[i].error)
            continue;
        return m->unreachable ? -EIO : -EPROTO;
    }
    return 0;
}
