/* common/sy_sse.c - incremental text/event-stream parser. One stream, one thread. */
#include "sy_sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

void sy_sse_init(struct sy_sse_parser *p, size_t max_event, sy_sse_event_fn on_event, void *arg)
{
    memset(p, 0, sizeof(*p));
    p->max_event = max_event;
    p->on_event = on_event;
    p->arg = arg;
}

void sy_sse_cleanup(struct sy_sse_parser *p)
{
    free(p->line);
    p->line = NULL;
    free(p->data);
    p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

static int grow(char **buf, size_t *cap, size_t need, size_t max)
{
    size_t ncap;
    char *nb;

    if (need <= *cap)
        return 0;
    if (need > max + 2)
        return -EMSGSIZE;
    ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    nb = realloc(*buf, ncap);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = ncap;
    return 0;
}

static int dispatch(struct sy_sse_parser *p)
{
    int rc = 0;

    if (p->has_data) {
        /* The data buffer ends with the '\n' of its last line: drop it. */
        size_t n = p->data_len ? p->data_len - 1 : 0;
        if (!p->data) {
            rc = grow(&p->data, &p->data_cap, 1, p->max_event);
            if (rc)
                return rc;
        }
        p->data[n] = '\0';
        rc = p->on_event(p->arg, p->event, p->data, n);
    }
    p->has_data = 0;
    p->data_len = 0;
    p->event[0] = '\0';
    return rc;
}

/* Handles one complete line (without its terminator). */
static int process_line(struct sy_sse_parser *p, const char *line, size_t len)
{
    const char *colon;
    const char *value;
    size_t flen, vlen;
    int rc;

    if (len == 0)
        return dispatch(p);
    if (line[0] == ':')
        return 0;
    colon = memchr(line, ':', len);
    if (colon) {
        flen = (size_t)(colon - line);
        value = colon + 1;
        vlen = len - flen - 1;
        if (vlen && *value == ' ') {
            value++;
            vlen--;
        }
    } else {
        flen = len;
        value = "";
        vlen = 0;
    }
    if (flen == 4 && memcmp(line, "data", 4) == 0) {
        rc = grow(&p->data, &p->data_cap, p->data_len + vlen + 2, p->max_event);
        if (rc)
            return rc;
        memcpy(p->data + p->data_len, value, vlen);
        p->data_len += vlen;
        p->data[p->data_len++] = '\n';
        p->has_data = 1;
    } else if (flen == 5 && memcmp(line, "event", 5) == 0) {
        if (vlen >= sizeof(p->event))
            vlen = sizeof(p->event) - 1;
        memcpy(p->event, value, vlen);
        p->event[vlen] = '\0';
    }
    return 0;
}

int sy_sse_feed(struct sy_sse_parser *p, const char *buf, size_t len)
{
    size_t i = 0;
    int rc;

    while (i < len) {
        const char *start = buf + i;
        size_t rest = len - i;
        size_t k;

        if (p->skip_lf) {
            p->skip_lf = 0;
            if (*start == '\n') {
                i++;
                continue;
            }
        }
        /* Find the next CR or LF (memchr is vectorised; CR is rare in practice). */
        {
            const char *lf = memchr(start, '\n', rest);
            size_t upto = lf ? (size_t)(lf - start) : rest;
            const char *cr = memchr(start, '\r', upto);
            k = cr ? (size_t)(cr - start) : upto;
        }
        if (k == rest) {
            rc = grow(&p->line, &p->line_cap, p->line_len + rest + 1, p->max_event);
            if (rc)
                return rc;
            memcpy(p->line + p->line_len, start, rest);
            p->line_len += rest;
            return 0;
        }
        if (start[k] == '\r')
            p->skip_lf = 1;
        if (p->line_len) {
            rc = grow(&p->line, &p->line_cap, p->line_len + k + 1, p->max_event);
            if (rc)
                return rc;
            memcpy(p->line + p->line_len, start, k);
            p->line_len += k;
            rc = process_line(p, p->line, p->line_len);
            p->line_len = 0;
        } else {
            rc = process_line(p, start, k);
        }
        if (rc)
            return rc;
        i += k + 1;
    }
    return 0;
}

int sy_sse_finish(struct sy_sse_parser *p)
{
    int rc = 0;

    if (p->line_len) {
        rc = process_line(p, p->line, p->line_len);
        p->line_len = 0;
        if (rc)
            return rc;
    }
    return dispatch(p);
}
