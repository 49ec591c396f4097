/* common/sy_http.c - HTTP/1.1 server on libevent bufferevents: parse, limits, answers.
 *
 * A connection moves IDLE -> HEADERS -> BODY -> HANDLING -> (IDLE | CLOSING). Only the
 * worker thread that owns the server touches it. Connections are freed only from the top
 * of a libevent callback (read, write, event, timer), never from inside a handler call, so a
 * handler may answer synchronously without the connection vanishing under its caller.
 */
#define SY_LOG_MODULE "http"

/* How long a closing connection may take to accept our last answer, and how long we keep
 * discarding its input after a half-close. */
#define SY_HTTP_WRITE_TIMEOUT_MS 10000
#define SY_HTTP_LINGER_MS 2000

#include "sy_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "sy_log.h"
#include "sy_util.h"

enum conn_state {
    CONN_IDLE = 0, /* waiting for the first byte of a request */
    CONN_HEADERS,  /* part of a request head is in */
    CONN_BODY,     /* head parsed, reading the body */
    CONN_HANDLING, /* the handler owns the request */
    CONN_CLOSING,  /* flushing the last answer, then close */
};

enum chunk_state {
    CHUNK_SIZE = 0,
    CHUNK_DATA,
    CHUNK_DATA_END,
    CHUNK_TRAILER,
};

struct sy_http_header {
    const char *name;
    const char *value;
};

struct sy_http_req {
    struct sy_http_conn *conn;
    enum sy_http_method method;
    const char *method_name;
    char *head; /* the request head, parsed in place */
    const char *path;
    const char *query;
    int minor; /* HTTP/1.<minor> */
    struct sy_http_header *headers;
    uint32_t n_headers;
    char *body;
    size_t body_len, body_cap;
    int64_t content_length; /* -1 when chunked */
    bool keep_alive;
    bool streaming;
    bool done;
    uint64_t start_us;
    char *resp_headers; /* "Name: value\r\n" lines */
    size_t resp_len, resp_cap;
    sy_http_abort_fn on_abort;
    void *abort_arg;
    sy_http_abort_fn on_writable;
    void *writable_arg;
};

struct sy_http_conn {
    struct sy_http_server *srv;
    struct bufferevent *bev;
    struct event *timer;
    struct event *resume; /* deferred parse of input that arrived while handling */
    enum conn_state state;
    struct sy_http_req *req;
    size_t scan_off; /* where the search for the end of the head resumes */
    enum chunk_state chunk_state;
    size_t chunk_left;
    uint64_t first_byte_us;
    bool lingering; /* CLOSING, answer written, write side shut: waiting for the client */
    char peer[INET6_ADDRSTRLEN + 8];
    struct sy_http_conn *prev, *next;
};

struct sy_http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct sy_http_limits limits;
    sy_http_handler_fn handler;
    void *handler_arg;
    sy_http_error_body_fn error_body;
    struct sy_http_conn *conns; /* all open connections */
    size_t n_conns;
    bool draining;
    void (*on_drained)(void *);
    void *drained_arg;
    time_t date_sec;
    char date[40]; /* "Date: ...\r\n" cached per second */
};

static void conn_free(struct sy_http_conn *conn);
static void conn_process(struct sy_http_conn *conn);

/* ------------------------------------------------------------------------------------ */

const char *sy_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static void arm_timer(struct sy_http_conn *conn, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(conn->timer, &tv);
}

static const char *date_header(struct sy_http_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof(srv->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

static void req_free(struct sy_http_req *req)
{
    if (!req)
        return;
    free(req->head);
    free(req->headers);
    free(req->body);
    free(req->resp_headers);
    free(req);
}

/* Enters CLOSING: once everything queued is written, half-close and keep discarding input
 * until the client closes too (or a short linger time passes). Closing with unread input
 * would make the kernel send RST, and the client could lose our answer (an early 413, say). */
static void conn_close_after_flush(struct sy_http_conn *conn)
{
    conn->state = CONN_CLOSING;
    bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
    arm_timer(conn, SY_HTTP_WRITE_TIMEOUT_MS);
}

/* CLOSING and everything is written: half-close and linger. Returns true when the
 * connection must be freed now. */
static bool conn_linger(struct sy_http_conn *conn)
{
    if (conn->lingering)
        return false;
    conn->lingering = true;
    evbuffer_drain(bufferevent_get_input(conn->bev),
                   evbuffer_get_length(bufferevent_get_input(conn->bev)));
    if (shutdown(bufferevent_getfd(conn->bev), SHUT_WR) < 0)
        return true;
    arm_timer(conn, SY_HTTP_LINGER_MS);
    return false;
}

/* Writes a complete answer for a request the server itself refuses, then closes. */
static void conn_send_error(struct sy_http_conn *conn, int status, const char *message)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    char msg[256];
    char *body;
    size_t len;

    if (status == 413) {
        snprintf(msg, sizeof(msg), "%s: the limit is %zu bytes (server.max_body_bytes)", message,
                 conn->srv->limits.max_body_bytes);
        message = msg;
    }
    body = conn->srv->error_body(status, message);
    len = strlen(body);

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: switchyard\r\n%sContent-Type: "
                        "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                        status, sy_http_reason(status), date_header(conn->srv), len);
    evbuffer_add(out, body, len);
    free(body);
    if (conn->req) {
        req_free(conn->req);
        conn->req = NULL;
    }
    conn_close_after_flush(conn);
}

static enum sy_http_method parse_method(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return SY_HTTP_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return SY_HTTP_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0)
            return SY_HTTP_POST;
        if (memcmp(m, "HEAD", 4) == 0)
            return SY_HTTP_HEAD;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return SY_HTTP_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return SY_HTTP_OPTIONS;
        break;
    default:
        break;
    }
    return SY_HTTP_OTHER;
}

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Does the comma-separated header value <v> contain the token <tok>? */
static bool has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, tok, tl) == 0)
            return true;
        v = e;
    }
    return false;
}

/* Parses the head (request line + headers, ending in CRLF CRLF) in req->head. Returns 0, or
 * an HTTP status for the error and sets *why. */
static int parse_head(struct sy_http_req *req, size_t len, const struct sy_http_limits *lim,
                      const char **why)
{
    char *p = req->head;
    char *end = req->head + len;
    char *line_end;
    char *sp1, *sp2;
    uint32_t cap;

    /* Request line: METHOD SP request-target SP HTTP-version CRLF */
    line_end = memchr(p, '\r', (size_t)(end - p));
    if (!line_end || line_end[1] != '\n') {
        *why = "malformed request line";
        return 400;
    }
    *line_end = '\0';
    sp1 = strchr(p, ' ');
    if (!sp1 || sp1 == p) {
        *why = "malformed request line";
        return 400;
    }
    for (char *c = p; c < sp1; c++) {
        if (!is_tchar((unsigned char)*c)) {
            *why = "malformed request method";
            return 400;
        }
    }
    sp2 = strchr(sp1 + 1, ' ');
    if (!sp2 || sp2 == sp1 + 1) {
        *why = "malformed request line";
        return 400;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    req->method_name = p;
    req->method = parse_method(p, (size_t)(sp1 - p));
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0) {
        req->minor = 1;
    } else if (strcmp(sp2 + 1, "HTTP/1.0") == 0) {
        req->minor = 0;
    } else if (strncmp(sp2 + 1, "HTTP/", 5) == 0) {
        *why = "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)";
        return 505;
    } else {
        *why = "malformed request line";
        return 400;
    }
    req->path = sp1 + 1;
    if (req->path[0] != '/') {
        *why = "request target must be a path starting with '/'";
        return 400;
    }
    for (const char *c = req->path; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            *why = "invalid character in request target";
            return 400;
        }
    }
    char *q = strchr(sp1 + 1, '?');
    if (q) {
        *q = '\0';
        req->query = q + 1;
    } else {
        req->query = "";
    }

    /* Header lines. Count them first so the array is allocated once. */
    p = line_end + 2;
    cap = 0;
    for (char *c = p; c + 1 < end; c++) {
        if (c[0] == '\r' && c[1] == '\n')
            cap++;
    }
    if (cap > lim->max_headers + 1) {
        *why = "too many header fields";
        return 431;
    }
    req->headers = sy_xcalloc(cap ? cap : 1, sizeof(*req->headers));
    req->n_headers = 0;
    while (p < end) {
        char *colon;
        char *v, *ve;

        line_end = memchr(p, '\r', (size_t)(end - p));
        if (!line_end || line_end + 1 >= end || line_end[1] != '\n') {
            *why = "malformed header line";
            return 400;
        }
        if (line_end == p)
            break; /* the empty line that ends the head */
        *line_end = '\0';
        if (*p == ' ' || *p == '\t') {
            *why = "obsolete header line folding is not accepted";
            return 400;
        }
        colon = strchr(p, ':');
        if (!colon || colon == p) {
            *why = "malformed header line";
            return 400;
        }
        for (char *c = p; c < colon; c++) {
            if (!is_tchar((unsigned char)*c)) {
                *why = "invalid character in header name";
                return 400;
            }
        }
        *colon = '\0';
        v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        ve = line_end;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *ve = '\0';
        for (char *c = v; c < ve; c++) {
            if (*c == '\0' || *c == '\n') {
                *why = "invalid character in header value";
                return 400;
            }
        }
        req->headers[req->n_headers].name = p;
        req->headers[req->n_headers].value = v;
        req->n_headers++;
        p = line_end + 2;
    }

    /* Framing: Transfer-Encoding and Content-Length (RFC 9112 section 6). */
    const char *te = sy_http_req_header(req, "transfer-encoding");
    const char *cl = NULL;
    int n_cl = 0;
    for (uint32_t i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, "content-length") == 0) {
            if (cl && strcmp(cl, req->headers[i].value) != 0) {
                *why = "conflicting Content-Length headers";
                return 400;
            }
            cl = req->headers[i].value;
            n_cl++;
        }
    }
    if (te) {
        if (cl) {
            *why = "both Transfer-Encoding and Content-Length are set";
            return 400;
        }
        if (strcasecmp(te, "chunked") != 0) {
            *why = "unsupported Transfer-Encoding (only chunked is accepted)";
            return 501;
        }
        if (req->minor == 0) {
            *why = "Transfer-Encoding is not allowed in HTTP/1.0";
            return 400;
        }
        req->content_length = -1;
    } else if (cl) {
        int64_t n;
        for (const char *c = cl; *c; c++) {
            if (*c < '0' || *c > '9') {
                *why = "invalid Content-Length";
                return 400;
            }
        }
        if (sy_parse_i64(cl, 0, INT64_MAX, &n) < 0) {
            *why = "invalid Content-Length";
            return 400;
        }
        req->content_length = n;
    } else {
        req->content_length = 0;
    }
    if (req->content_length > 0 && (uint64_t)req->content_length > lim->max_body_bytes) {
        *why = "request body too large";
        return 413;
    }

    const char *conn_hdr = sy_http_req_header(req, "connection");
    if (req->minor == 1)
        req->keep_alive = !(conn_hdr && has_token(conn_hdr, "close"));
    else
        req->keep_alive = conn_hdr && has_token(conn_hdr, "keep-alive");
    return 0;
}

static int body_reserve(struct sy_http_req *req, size_t need)
{
    size_t cap;
    char *nb;

    if (need + 1 <= req->body_cap)
        return 0;
    cap = req->body_cap ? req->body_cap : 1024;
    while (cap < need + 1)
        cap *= 2;
    nb = realloc(req->body, cap);
    if (!nb)
        return -ENOMEM;
    req->body = nb;
    req->body_cap = cap;
    return 0;
}

/* Moves chunked body data from <in> into the request. Returns 1 when the body is complete,
 * 0 when more input is needed, or an HTTP status with *why on error. */
static int read_chunked(struct sy_http_conn *conn, struct evbuffer *in, const char **why)
{
    struct sy_http_req *req = conn->req;
    const struct sy_http_limits *lim = &conn->srv->limits;

    for (;;) {
        switch (conn->chunk_state) {
        case CHUNK_SIZE:
        case CHUNK_TRAILER: {
            size_t eol_len = 0;
            struct evbuffer_ptr eol =
                evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
            char line[128];
            size_t n;

            if (eol.pos < 0) {
                if (evbuffer_get_length(in) > 4096) {
                    *why = "malformed chunked body";
                    return 400;
                }
                return 0;
            }
            n = (size_t)eol.pos;
            if (conn->chunk_state == CHUNK_TRAILER) {
                evbuffer_drain(in, n + eol_len);
                if (n == 0)
                    return 1;
                continue;
            }
            if (n >= sizeof(line)) {
                *why = "malformed chunk size";
                return 400;
            }
            evbuffer_remove(in, line, n);
            evbuffer_drain(in, eol_len);
            line[n] = '\0';
            char *semi = strchr(line, ';');
            if (semi)
                *semi = '\0';
            char *endp;
            errno = 0;
            unsigned long long sz = strtoull(line, &endp, 16);
            if (errno || endp == line || (*endp && *endp != ' ' && *endp != '\t')) {
                *why = "malformed chunk size";
                return 400;
            }
            if (sz > lim->max_body_bytes || req->body_len + sz > lim->max_body_bytes) {
                *why = "request body too large";
                return 413;
            }
            if (sz == 0) {
                conn->chunk_state = CHUNK_TRAILER;
                continue;
            }
            conn->chunk_left = (size_t)sz;
            conn->chunk_state = CHUNK_DATA;
            if (body_reserve(req, req->body_len + conn->chunk_left) < 0) {
                *why = "out of memory";
                return 500;
            }
            break;
        }
        case CHUNK_DATA: {
            size_t avail = evbuffer_get_length(in);
            size_t take = avail < conn->chunk_left ? avail : conn->chunk_left;
            if (take == 0)
                return 0;
            evbuffer_remove(in, req->body + req->body_len, take);
            req->body_len += take;
            conn->chunk_left -= take;
            if (conn->chunk_left)
                return 0;
            conn->chunk_state = CHUNK_DATA_END;
            break;
        }
        case CHUNK_DATA_END: {
            char crlf[2];
            if (evbuffer_get_length(in) < 2)
                return 0;
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n') {
                *why = "malformed chunked body";
                return 400;
            }
            conn->chunk_state = CHUNK_SIZE;
            break;
        }
        }
    }
}

static void dispatch(struct sy_http_conn *conn)
{
    struct sy_http_req *req = conn->req;

    evtimer_del(conn->timer);
    conn->state = CONN_HANDLING;
    if (body_reserve(req, req->body_len) < 0) {
        conn_send_error(conn, 500, "out of memory");
        return;
    }
    req->body[req->body_len] = '\0';
    conn->srv->handler(req, conn->srv->handler_arg);
}

/* Parses as much of the input as the state allows; dispatches complete requests. */
static void conn_process(struct sy_http_conn *conn)
{
    struct sy_http_server *srv = conn->srv;
    const struct sy_http_limits *lim = &srv->limits;
    struct evbuffer *in = bufferevent_get_input(conn->bev);

    for (;;) {
        size_t avail = evbuffer_get_length(in);
        const char *why = NULL;
        int st;

        switch (conn->state) {
        case CONN_IDLE:
            if (avail == 0)
                return;
            /* Tolerate stray CRLFs between requests (RFC 9112 section 2.2). */
            while (avail >= 2) {
                unsigned char two[2];
                evbuffer_copyout(in, two, 2);
                if (two[0] != '\r' || two[1] != '\n')
                    break;
                evbuffer_drain(in, 2);
                avail -= 2;
            }
            if (avail == 0)
                return;
            conn->state = CONN_HEADERS;
            conn->scan_off = 0;
            conn->first_byte_us = sy_now_us();
            arm_timer(conn, lim->header_timeout_ms);
            break;
        case CONN_HEADERS: {
            struct evbuffer_ptr start, found;
            size_t head_len;

            evbuffer_ptr_set(in, &start, conn->scan_off, EVBUFFER_PTR_SET);
            found = evbuffer_search(in, "\r\n\r\n", 4, &start);
            if (found.pos < 0) {
                if (avail > lim->max_header_bytes) {
                    conn_send_error(conn, 431, "request header section too large");
                    return;
                }
                conn->scan_off = avail > 3 ? avail - 3 : 0;
                return;
            }
            head_len = (size_t)found.pos + 4;
            if (head_len > lim->max_header_bytes) {
                conn_send_error(conn, 431, "request header section too large");
                return;
            }
            conn->req = sy_xcalloc(1, sizeof(*conn->req));
            conn->req->conn = conn;
            conn->req->start_us = conn->first_byte_us;
            conn->req->head = sy_xmalloc(head_len + 1);
            evbuffer_remove(in, conn->req->head, head_len);
            conn->req->head[head_len] = '\0';
            st = parse_head(conn->req, head_len, lim, &why);
            if (st) {
                conn_send_error(conn, st, why);
                return;
            }
            conn->state = CONN_BODY;
            conn->chunk_state = CHUNK_SIZE;
            conn->chunk_left = 0;
            if (conn->req->content_length != 0) {
                const char *expect = sy_http_req_header(conn->req, "expect");
                if (expect && strcasecmp(expect, "100-continue") == 0 && conn->req->minor == 1 &&
                    evbuffer_get_length(in) == 0) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                    bufferevent_write(conn->bev, cont, sizeof(cont) - 1);
                }
                arm_timer(conn, lim->body_timeout_ms);
            }
            break;
        }
        case CONN_BODY: {
            struct sy_http_req *req = conn->req;
            if (req->content_length >= 0) {
                size_t need = (size_t)req->content_length;
                if (need && avail < need)
                    return;
                if (need) {
                    if (body_reserve(req, need) < 0) {
                        conn_send_error(conn, 500, "out of memory");
                        return;
                    }
                    evbuffer_remove(in, req->body, need);
                    req->body_len = need;
                }
            } else {
                st = read_chunked(conn, in, &why);
                if (st == 0)
                    return;
                if (st != 1) {
                    conn_send_error(conn, st, why);
                    return;
                }
            }
            dispatch(conn);
            /* The handler may have answered synchronously: loop to serve pipelined input. */
            break;
        }
        case CONN_HANDLING:
            /* Input beyond one request waits; a flood of it is abuse. */
            if (avail > lim->max_header_bytes + lim->max_body_bytes) {
                bufferevent_disable(conn->bev, EV_READ);
            }
            return;
        case CONN_CLOSING:
            /* Whatever else the client sends is discarded. */
            evbuffer_drain(in, avail);
            return;
        }
    }
}

/* After a callback: a CLOSING connection whose answer is written lingers, then goes. */
static void conn_after_io(struct sy_http_conn *conn)
{
    if (conn->state == CONN_CLOSING &&
        evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0 && conn_linger(conn))
        conn_free(conn);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct sy_http_conn *conn = arg;
    (void)fd;
    (void)what;
    conn_process(conn);
    conn_after_io(conn);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sy_http_conn *conn = arg;
    (void)bev;
    conn_process(conn);
    conn_after_io(conn);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct sy_http_conn *conn = arg;
    size_t queued = evbuffer_get_length(bufferevent_get_output(bev));

    if (conn->state == CONN_CLOSING) {
        if (queued == 0 && conn_linger(conn))
            conn_free(conn);
        return;
    }
    if (conn->req && conn->req->on_writable && queued <= SY_HTTP_LOW_WATER) {
        sy_http_abort_fn cb = conn->req->on_writable;
        conn->req->on_writable = NULL;
        cb(conn->req, conn->req->writable_arg);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_http_conn *conn = arg;
    (void)bev;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (conn->state == CONN_HEADERS || conn->state == CONN_BODY)
            sy_debug("%s: client closed during the request head or body", conn->peer);
        conn_free(conn);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_http_conn *conn = arg;
    (void)fd;
    (void)what;

    switch (conn->state) {
    case CONN_IDLE:
    case CONN_CLOSING:
        conn_free(conn);
        return;
    case CONN_HEADERS:
        conn_send_error(conn, 408, "timed out reading the request header section");
        break;
    case CONN_BODY:
        conn_send_error(conn, 408, "timed out reading the request body");
        break;
    case CONN_HANDLING:
        return;
    }
    conn_after_io(conn);
}

static void maybe_drained(struct sy_http_server *srv)
{
    if (srv->draining && srv->n_conns == 0 && srv->on_drained) {
        void (*cb)(void *) = srv->on_drained;
        srv->on_drained = NULL;
        cb(srv->drained_arg);
    }
}

/* Frees the connection; an unfinished request is aborted first. */
static void conn_free(struct sy_http_conn *conn)
{
    struct sy_http_server *srv = conn->srv;

    if (conn->req) {
        struct sy_http_req *req = conn->req;
        if (!req->done && conn->state == CONN_HANDLING && req->on_abort)
            req->on_abort(req, req->abort_arg);
        req_free(req);
        conn->req = NULL;
    }
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->n_conns--;
    event_free(conn->timer);
    event_free(conn->resume);
    bufferevent_free(conn->bev);
    free(conn);
    maybe_drained(srv);
}

static void reject_connection(int fd)
{
    static const char msg[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 126\r\nConnection: close\r\n\r\n"
        "{\"error\":{\"message\":\"too many connections to this proxy\",\"type\":\"server_error\","
        "\"param\":null,\"code\":\"too_many_connections\"}}\n";
    ssize_t w = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct sy_http_server *srv = arg;
    struct sy_http_conn *conn;
    int one = 1;
    (void)l;
    (void)salen;

    if (srv->draining || srv->n_conns >= srv->limits.max_connections) {
        sy_warn("connection cap (%u) reached: refusing a connection", srv->limits.max_connections);
        reject_connection(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn = sy_xcalloc(1, sizeof(*conn));
    conn->srv = srv;
    conn->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    conn->timer = evtimer_new(srv->base, on_timer, conn);
    conn->resume = event_new(srv->base, -1, 0, on_resume, conn);
    if (!conn->bev || !conn->timer || !conn->resume) {
        sy_error("cannot set up a connection: out of memory");
        if (conn->bev)
            bufferevent_free(conn->bev);
        else
            close(fd);
        if (conn->timer)
            event_free(conn->timer);
        if (conn->resume)
            event_free(conn->resume);
        free(conn);
        return;
    }
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(conn->peer, sizeof(conn->peer), "%s:%u", ip, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(conn->peer, sizeof(conn->peer), "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->n_conns++;
    conn->state = CONN_IDLE;
    bufferevent_setcb(conn->bev, on_read, on_write, on_event, conn);
    bufferevent_setwatermark(conn->bev, EV_WRITE, SY_HTTP_LOW_WATER, 0);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    arm_timer(conn, srv->limits.header_timeout_ms);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    sy_warn("accept failed: %s", strerror(errno));
}

struct sy_http_server *sy_http_server_new(struct event_base *base, int fd,
                                          const struct sy_http_limits *limits,
                                          sy_http_handler_fn handler, void *arg,
                                          sy_http_error_body_fn error_body)
{
    struct sy_http_server *srv = sy_xcalloc(1, sizeof(*srv));

    srv->base = base;
    srv->limits = *limits;
    srv->handler = handler;
    srv->handler_arg = arg;
    srv->error_body = error_body;
    srv->listener = evconnlistener_new(base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!srv->listener) {
        free(srv);
        return NULL;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    return srv;
}

void sy_http_server_set_limits(struct sy_http_server *srv, const struct sy_http_limits *limits)
{
    srv->limits = *limits;
}

void sy_http_server_drain(struct sy_http_server *srv, void (*on_drained)(void *), void *arg)
{
    struct sy_http_conn *conn, *next;

    srv->draining = true;
    srv->on_drained = on_drained;
    srv->drained_arg = arg;
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    for (conn = srv->conns; conn; conn = next) {
        next = conn->next;
        if (conn->state == CONN_IDLE)
            conn_free(conn);
    }
    maybe_drained(srv);
}

size_t sy_http_server_connections(const struct sy_http_server *srv)
{
    return srv->n_conns;
}

void sy_http_server_free(struct sy_http_server *srv)
{
    if (!srv)
        return;
    srv->on_drained = NULL;
    while (srv->conns)
        conn_free(srv->conns);
    if (srv->listener)
        evconnlistener_free(srv->listener);
    free(srv);
}

/* ------------------------------------------------------------------------------------ */

enum sy_http_method sy_http_req_method(const struct sy_http_req *req)
{
    return req->method;
}

const char *sy_http_req_method_name(const struct sy_http_req *req)
{
    return req->method_name;
}

const char *sy_http_req_path(const struct sy_http_req *req)
{
    return req->path;
}

const char *sy_http_req_query(const struct sy_http_req *req)
{
    return req->query;
}

const char *sy_http_req_header(const struct sy_http_req *req, const char *name)
{
    for (uint32_t i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

const char *sy_http_req_body(const struct sy_http_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? req->body : "";
}

uint64_t sy_http_req_start_us(const struct sy_http_req *req)
{
    return req->start_us;
}

const char *sy_http_req_peer(const struct sy_http_req *req)
{
    return req->conn->peer;
}

void sy_http_req_on_abort(struct sy_http_req *req, sy_http_abort_fn cb, void *arg)
{
    req->on_abort = cb;
    req->abort_arg = arg;
}

void sy_http_req_on_writable(struct sy_http_req *req, sy_http_abort_fn cb, void *arg)
{
    req->on_writable = cb;
    req->writable_arg = arg;
}

bool sy_http_req_streaming(const struct sy_http_req *req)
{
    return req->streaming;
}

void sy_http_add_header(struct sy_http_req *req, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    size_t need = req->resp_len + nl + vl + 4;

    if (strpbrk(value, "\r\n") || strpbrk(name, "\r\n: "))
        return;
    if (need > req->resp_cap) {
        size_t cap = req->resp_cap ? req->resp_cap * 2 : 512;
        while (cap < need)
            cap *= 2;
        req->resp_headers = sy_xrealloc(req->resp_headers, cap);
        req->resp_cap = cap;
    }
    memcpy(req->resp_headers + req->resp_len, name, nl);
    req->resp_len += nl;
    req->resp_headers[req->resp_len++] = ':';
    req->resp_headers[req->resp_len++] = ' ';
    memcpy(req->resp_headers + req->resp_len, value, vl);
    req->resp_len += vl;
    req->resp_headers[req->resp_len++] = '\r';
    req->resp_headers[req->resp_len++] = '\n';
}

/* Whether the connection must close after this answer. */
static bool closes_after(const struct sy_http_req *req)
{
    return !req->keep_alive || req->conn->srv->draining;
}

static void write_head(struct sy_http_req *req, int status, const char *content_type,
                       const char *framing)
{
    struct sy_http_conn *conn = req->conn;
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    const char *date = date_header(conn->srv);
    const char *connection = closes_after(req) ? "Connection: close\r\n"
                             : req->minor == 0 ? "Connection: keep-alive\r\n"
                                               : "";
    char head[1024];
    int n;

    /* One buffer, one evbuffer_add: the head is on every answer's path. */
    n = snprintf(head, sizeof(head), "HTTP/1.%d %d %s\r\nServer: switchyard\r\n%s%s%s%s%s%s",
                 req->minor, status, sy_http_reason(status), date,
                 content_type ? "Content-Type: " : "", content_type ? content_type : "",
                 content_type ? "\r\n" : "", framing, connection);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        /* Only an absurd content type gets here: send the pieces separately. */
        evbuffer_add_printf(out, "HTTP/1.%d %d %s\r\nServer: switchyard\r\n%s", req->minor, status,
                            sy_http_reason(status), date);
        if (content_type)
            evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
        evbuffer_add_printf(out, "%s%s", framing, connection);
        n = 0;
    }
    if (req->resp_len + 2 <= sizeof(head) - (size_t)n) {
        if (req->resp_len)
            memcpy(head + n, req->resp_headers, req->resp_len);
        memcpy(head + n + req->resp_len, "\r\n", 2);
        evbuffer_add(out, head, (size_t)n + req->resp_len + 2);
    } else {
        evbuffer_add(out, head, (size_t)n);
        evbuffer_add(out, req->resp_headers, req->resp_len);
        evbuffer_add(out, "\r\n", 2);
    }
}

/* The answer is fully queued: reuse the connection or close it. */
static void req_complete(struct sy_http_req *req)
{
    struct sy_http_conn *conn = req->conn;
    bool close_conn = closes_after(req);

    req->done = true;
    conn->req = NULL;
    req_free(req);
    if (close_conn) {
        conn_close_after_flush(conn);
        return;
    }
    conn->state = CONN_IDLE;
    bufferevent_enable(conn->bev, EV_READ);
    arm_timer(conn, conn->srv->limits.idle_timeout_ms);
    /* Pipelined input may already be buffered; parse it from the loop, not from here. */
    if (evbuffer_get_length(bufferevent_get_input(conn->bev)))
        event_active(conn->resume, 0, 0);
}

void sy_http_reply(struct sy_http_req *req, int status, const char *content_type, const char *body,
                   size_t len)
{
    char framing[64];

    snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", len);
    write_head(req, status, content_type, framing);
    if (len && req->method != SY_HTTP_HEAD)
        evbuffer_add(bufferevent_get_output(req->conn->bev), body, len);
    req_complete(req);
}

void sy_http_stream_begin(struct sy_http_req *req, int status, const char *content_type)
{
    req->streaming = true;
    if (req->minor == 0)
        req->keep_alive = false; /* HTTP/1.0: the end of the body is the end of the connection */
    write_head(req, status, content_type,
               req->minor ? "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                          : "Cache-Control: no-cache\r\n");
}

size_t sy_http_stream_write(struct sy_http_req *req, const char *data, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(req->conn->bev);

    if (len && req->method != SY_HTTP_HEAD) {
        if (req->minor) {
            char frame[4096];
            int n = snprintf(frame, sizeof(frame), "%zx\r\n", len);
            if ((size_t)n + len + 2 <= sizeof(frame)) {
                /* Small pieces (SSE events) go out as one add: size line, data, CRLF. */
                memcpy(frame + n, data, len);
                memcpy(frame + n + len, "\r\n", 2);
                evbuffer_add(out, frame, (size_t)n + len + 2);
            } else {
                evbuffer_add(out, frame, (size_t)n);
                evbuffer_add(out, data, len);
                evbuffer_add(out, "\r\n", 2);
            }
        } else {
            evbuffer_add(out, data, len);
        }
    }
    return evbuffer_get_length(out);
}

size_t sy_http_req_queued(const struct sy_http_req *req)
{
    return evbuffer_get_length(bufferevent_get_output(req->conn->bev));
}

void sy_http_stream_end(struct sy_http_req *req)
{
    if (req->minor && req->method != SY_HTTP_HEAD)
        evbuffer_add(bufferevent_get_output(req->conn->bev), "0\r\n\r\n", 5);
    req_complete(req);
}
