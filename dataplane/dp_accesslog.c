/* dataplane/dp_accesslog.c - JSON access log lines. Any worker thread; no shared state. */
#include "dp_accesslog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sy_policy.h"
#include "sy_util.h"

void dp_json_escape_into(char *buf, size_t cap, size_t *off, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *off;

    for (; s && *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            buf[o++] = '\\';
            buf[o++] = 'u';
            buf[o++] = '0';
            buf[o++] = '0';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o < cap ? o : cap - 1] = '\0';
    *off = o;
}

static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, cap - *off, fmt, ap);
    va_end(ap);
    if (n > 0)
        *off += (size_t)n < cap - *off ? (size_t)n : cap - *off - 1;
}

static void put_str(char *buf, size_t cap, size_t *off, const char *key, const char *val)
{
    if (!val) {
        put(buf, cap, off, ",\"%s\":null", key);
        return;
    }
    put(buf, cap, off, ",\"%s\":\"", key);
    dp_json_escape_into(buf, cap, off, val);
    put(buf, cap, off, "\"");
}

static void put_tokens(char *buf, size_t cap, size_t *off, const char *key, int64_t v)
{
    if (v < 0)
        put(buf, cap, off, ",\"%s\":null", key);
    else
        put(buf, cap, off, ",\"%s\":%" PRId64, key, v);
}

/* "tenant", its labels, "tags" as a list and "user": who a request is billed to. */
static void put_caller(char *buf, size_t cap, size_t *off, const struct dp_access_entry *e)
{
    const char *t = e->tags;
    char tag[128];
    size_t i, n;

    put_str(buf, cap, off, "tenant", e->tenant ? e->tenant->name : NULL);
    put(buf, cap, off, ",\"tenant_labels\":{");
    for (i = 0; e->tenant && i < e->tenant->n_labels; i++) {
        put(buf, cap, off, "%s\"", i ? "," : "");
        dp_json_escape_into(buf, cap, off, e->tenant->labels[i].key);
        put(buf, cap, off, "\":\"");
        dp_json_escape_into(buf, cap, off, e->tenant->labels[i].value);
        put(buf, cap, off, "\"");
    }
    put(buf, cap, off, "},\"tags\":[");
    for (i = 0; t && *t; i++) {
        n = strcspn(t, ",");
        snprintf(tag, sizeof(tag), "%.*s", (int)n, t);
        put(buf, cap, off, "%s\"", i ? "," : "");
        dp_json_escape_into(buf, cap, off, tag);
        put(buf, cap, off, "\"");
        t += n + (t[n] == ',');
    }
    put(buf, cap, off, "]");
    put_str(buf, cap, off, "user", e->user);
}

void dp_access_log(int fd, const struct dp_access_entry *e)
{
    char line[8192];
    size_t off = 0;
    uint64_t now = sy_wall_us();
    time_t sec = (time_t)(now / 1000000u);
    struct tm tm;
    char ts[32];

    if (fd < 0)
        return;
    gmtime_r(&sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    put(line, sizeof(line), &off, "{\"ts\":\"%s.%06uZ\"", ts, (unsigned)(now % 1000000u));
    put_str(line, sizeof(line), &off, "request_id", e->request_id);
    put_str(line, sizeof(line), &off, "peer", e->peer);
    put_str(line, sizeof(line), &off, "method", e->method);
    put_str(line, sizeof(line), &off, "path", e->path);
    put_str(line, sizeof(line), &off, "route", e->route);
    put_str(line, sizeof(line), &off, "provider", e->provider);
    put_str(line, sizeof(line), &off, "model", e->model);
    put_str(line, sizeof(line), &off, "policy_version", e->policy_version);
    put_str(line, sizeof(line), &off, "arm", e->arm);
    put_str(line, sizeof(line), &off, "feedback_id", e->feedback_id);
    put_caller(line, sizeof(line), &off, e);
    put(line, sizeof(line), &off,
        ",\"status\":%d,\"stream\":%s,\"latency_us\":%" PRIu64 ",\"ttft_us\":%" PRIu64, e->status,
        e->stream ? "true" : "false", e->latency_us, e->ttft_us);
    put_tokens(line, sizeof(line), &off, "prompt_tokens", e->prompt_tokens);
    put_tokens(line, sizeof(line), &off, "completion_tokens", e->completion_tokens);
    put_tokens(line, sizeof(line), &off, "cached_tokens", e->cached_tokens);
    put(line, sizeof(line), &off, ",\"cost_usd\":%.8f,\"bytes_in\":%zu,\"bytes_out\":%zu",
        e->cost_usd, e->bytes_in, e->bytes_out);
    put(line, sizeof(line), &off, ",\"attempts\":%d", e->attempts);
    put_str(line, sizeof(line), &off, "chain", e->chain);
    put_str(line, sizeof(line), &off, "error", e->error);
    if (off > sizeof(line) - 3)
        off = sizeof(line) - 3;
    line[off++] = '}';
    line[off++] = '\n';
    ssize_t w = write(fd, line, off);
    (void)w;
}
