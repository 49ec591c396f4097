/* common/sy_sse.h - incremental parser for Server-Sent Events (text/event-stream).
 *
 * Bytes arrive in arbitrary pieces (a network read may end mid-line); the parser keeps the
 * unfinished tail and calls back once per complete event with its `event:` name and its
 * `data:` lines joined by '\n', as the HTML living standard defines. Comment lines (":...")
 * and unknown fields are ignored; `id:` and `retry:` are ignored too (no consumer needs them).
 * A parser belongs to one stream on one thread.
 */
#ifndef SY_SSE_H
#define SY_SSE_H

#include <stddef.h>

/* Called once per dispatched event. <event> is "" when the event had no `event:` field.
 * <data> is NUL-terminated, <len> bytes. Return 0 to go on, non-zero to stop parsing (the
 * value is returned by sy_sse_feed). */
typedef int (*sy_sse_event_fn)(void *arg, const char *event, const char *data, size_t len);

struct sy_sse_parser {
    char *line; /* unfinished line carried between feeds */
    size_t line_len, line_cap;
    char *data; /* data lines of the current event */
    size_t data_len, data_cap;
    char event[64];
    int has_data;
    int skip_lf;      /* last byte seen was CR: a following LF belongs to it */
    size_t max_event; /* cap on one event's size; exceeding it is an error */
    sy_sse_event_fn on_event;
    void *arg;
};

/* Prepares <p> to deliver events to <on_event>(<arg>, ...). Events larger than <max_event>
 * bytes make sy_sse_feed fail with -EMSGSIZE. */
void sy_sse_init(struct sy_sse_parser *p, size_t max_event, sy_sse_event_fn on_event, void *arg);

/* Releases the parser's buffers. Accepts a zeroed parser. */
void sy_sse_cleanup(struct sy_sse_parser *p);

/* Feeds <len> bytes. Returns 0, the callback's non-zero value when it stopped the parse, or
 * -EMSGSIZE when an event exceeds the cap. */
int sy_sse_feed(struct sy_sse_parser *p, const char *buf, size_t len);

/* Dispatches an event left unterminated at end of stream (a lenient end). Returns as
 * sy_sse_feed. */
int sy_sse_finish(struct sy_sse_parser *p);

#endif
