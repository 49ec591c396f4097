/* controlplane/ctl/ctl_http.c - one admin API request with libcurl's easy API.
 *
 * One easy handle per request: the CLI makes one or two calls per run, so reusing
 * connections buys nothing. Redirects are not followed (the admin API has none; a proxy
 * that redirects should be seen, not silently obeyed). See ctl_http.h.
 */
#include "ctl_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_reply.h"
#include "sy_json.h"
#include "sy_util.h"

struct sink {
    char *buf;
    size_t len;
    size_t cap;
    int err; /* -EFBIG or -ENOMEM once the body could not be kept */
};

void ctl_reply_cleanup(struct ctl_reply *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;

    if (n > CTL_MAX_REPLY - s->len) {
        s->err = -EFBIG;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
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

/* Appends <h> to *list, keeping the list intact on failure. Returns 0, or -ENOMEM. */
static int add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *l = curl_slist_append(*list, h);

    if (!l)
        return -ENOMEM;
    *list = l;
    return 0;
}

int ctl_http_request(const struct ctl_args *a, const char *method, const char *path,
                     const char *ctype, const char *body, size_t len, struct ctl_reply *r,
                     char **errmsg)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    struct sink sink = {0};
    char *url = sy_xasprintf("%s%s", a->server, path);
    char *hdr = NULL;
    CURLcode rc;
    CURL *curl;
    int ret = 0;

    memset(r, 0, sizeof(*r));
    curl = curl_easy_init();
    if (!curl) {
        ret = -ENOMEM;
        *errmsg = sy_xstrdup("cannot start libcurl");
        goto out_free_url;
    }
    /* "Expect:" skips curl's 100-continue round trip for large policies. With no type,
     * "Content-Type:" stops curl from labelling an empty POST as a form. */
    hdr = ctype ? sy_xasprintf("Content-Type: %s", ctype) : sy_xstrdup("Content-Type:");
    if (add_header(&headers, "Accept: application/json") < 0 ||
        add_header(&headers, "Expect:") < 0 || add_header(&headers, hdr) < 0) {
        ret = -ENOMEM;
        *errmsg = sy_xstrdup("out of memory");
        goto out_cleanup_curl;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "switchyardctl/" CTL_VERSION);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, a->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     a->timeout_ms < CTL_CONNECT_TIMEOUT_MS ? a->timeout_ms
                                                            : CTL_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }

    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        if (sink.err == -EFBIG) {
            ret = -EFBIG;
            *errmsg = sy_xasprintf("reply from %s is larger than %u MiB", a->server,
                                   CTL_MAX_REPLY / (1024 * 1024));
        } else if (sink.err) {
            ret = sink.err;
            *errmsg = sy_xstrdup("out of memory reading the reply");
        } else {
            size_t n = strlen(errbuf);

            while (n > 0 && (errbuf[n - 1] == ' ' || errbuf[n - 1] == '\n'))
                errbuf[--n] = '\0';
            ret = -EHOSTUNREACH;
            *errmsg = sy_xasprintf("cannot reach %s: %s", a->server,
                                   *errbuf ? errbuf : curl_easy_strerror(rc));
        }
        free(sink.buf);
        goto out_cleanup_curl;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = sink.buf;
    r->len = sink.len;

out_cleanup_curl:
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(hdr);
out_free_url:
    free(url);
    return ret;
}

int ctl_call(const struct ctl_args *a, const char *method, const char *path, const char *ctype,
             const char *body, size_t len, cJSON **out)
{
    struct ctl_reply r;
    char *errmsg = NULL;
    char *perr = NULL;
    cJSON *json;
    int rc;

    *out = NULL;
    rc = ctl_http_request(a, method, path, ctype, body, len, &r, &errmsg);
    if (rc < 0) {
        ctl_errorf("%s", errmsg);
        free(errmsg);
        return rc == -EHOSTUNREACH ? CTL_EXIT_UNREACHABLE : CTL_EXIT_SERVER;
    }
    if (r.status < 200 || r.status > 299) {
        char *text = ctl_reply_error_text(r.status, r.body ? r.body : "", r.len);

        ctl_errorf("%s", text);
        free(text);
        if (a->json) {
            json = sy_json_parse(r.body ? r.body : "", r.len, NULL);
            if (json)
                ctl_json_print(stdout, json);
            cJSON_Delete(json);
        }
        ctl_reply_cleanup(&r);
        return CTL_EXIT_SERVER;
    }
    json = sy_json_parse(r.body ? r.body : "", r.len, &perr);
    ctl_reply_cleanup(&r);
    if (!json) {
        char *what = sy_xasprintf("%s %s: not JSON (%s)", method, path, perr ? perr : "empty body");
        free(perr);
        return ctl_unexpected(what);
    }
    if (!cJSON_IsObject(json)) {
        rc = ctl_unexpected(sy_xasprintf("%s %s: expected a JSON object, got %s", method, path,
                                         sy_json_type_name(json)));
        cJSON_Delete(json);
        return rc;
    }
    *out = json;
    return CTL_EXIT_OK;
}
