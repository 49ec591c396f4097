/* tests/mockllm/mock_plan.h - the dialect-neutral "echo plan" and the rules every dialect
 * shares: what the mock answers, how it splits a stream, how it counts tokens.
 *
 * A dialect parses its request format into a struct mock_plan (model, last user text,
 * optional tool, token count of the prompt), calls mock_plan_finish(), and renders the
 * plan in its own wire format. Keeping the rules here means every dialect echoes, splits
 * and counts the same way. Pure functions; any thread.
 */
#ifndef MOCK_PLAN_H
#define MOCK_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/* Streamed text is cut at word starts, and never into pieces longer than this. */
#define MOCK_PIECE_MAX 16
/* A stream carries at least this many content (or tool-argument) pieces. */
#define MOCK_PIECES_MIN 3
#define MOCK_REPLY_PREFIX "echo: "

struct mock_plan {
    char *model;            /* echoed back; never NULL after parsing */
    char *text;             /* the last user message's text ("" when there is none) */
    char *tool_name;        /* NULL: answer with text; else one call to this tool */
    char *reply;            /* set by mock_plan_finish: "echo: " + text */
    char *tool_args;        /* set by mock_plan_finish when tool_name: {"echo":"<text>"} */
    bool stream;            /* answer as a stream */
    bool include_usage;     /* stream: add the usage event */
    long prompt_tokens;     /* summed by the dialect with mock_tokens() */
    long completion_tokens; /* set by mock_plan_finish */
    uint64_t seq;           /* request number, for ids */
    long created;           /* unix seconds */
};

/* One piece of a split string: bytes [off, off+len). */
struct mock_piece {
    size_t off;
    size_t len;
};

/* The token rule: (bytes + 3) / 4, i.e. one token per started 4 bytes. */
long mock_tokens(size_t bytes);

/* Token cost of one prompt message with <bytes> bytes of text: mock_tokens(bytes) + 3. */
long mock_message_tokens(size_t bytes);

/* Fills reply, tool_args and completion_tokens from text and tool_name.
 * Returns 0 or -ENOMEM. */
int mock_plan_finish(struct mock_plan *p);

/* Frees what <p> owns and zeroes it. Accepts a zeroed plan. */
void mock_plan_cleanup(struct mock_plan *p);

/* Splits <s> (<len> bytes, UTF-8) into stream pieces: a new piece starts at each space that
 * follows a non-space, pieces are at most MOCK_PIECE_MAX bytes, cuts fall on UTF-8
 * character boundaries, and long pieces are halved until there are at least <min_pieces>
 * (when the text has enough characters). Sets *out (caller frees) and *n.
 * Returns 0 or -ENOMEM. */
int mock_split(const char *s, size_t len, size_t min_pieces, struct mock_piece **out, size_t *n);

/* Concatenated text of a message content: a string, or an array of parts whose "text"
 * members are joined; anything else (null, absent) is "". Returns a malloc'd string and its
 * length in *len, or NULL with *bad set when <content> has the wrong type, or NULL with
 * *bad clear on OOM. */
char *mock_content_text(const cJSON *content, size_t *len, bool *bad);

/* Prints <item> compactly as "data: <json>\n\n" (an SSE event). Returns a malloc'd string or
 * NULL on OOM. Borrows <item>. */
char *mock_sse_event(const cJSON *item);

/* Prints <item> compactly. Returns a malloc'd string (length in *len) or NULL on OOM. */
char *mock_json_print(const cJSON *item, size_t *len);

/* Returns the value of a JSON member if it has the wanted kind, else NULL. */
const char *mock_json_string(const cJSON *obj, const char *name);

#endif
