/* dataplane/dp_features.h - what routing needs to know about a request, read once.
 *
 * dp_features_extract() walks the parsed OpenAI request (cJSON) and a few headers one time
 * and fills a struct dp_features: the requested model, tags, an estimate of the prompt
 * tokens, message count, tools / images / JSON mode / stream, the text of the last user
 * message and of the system prompt, region and compliance wishes, and a hash for cache
 * affinity. Routing (dp_match), lowest_cost and cache_affinity read it; nobody re-walks the
 * JSON.
 *
 * Ownership: strings are borrowed from the cJSON tree and from the header values wherever
 * they can be (both must outlive the features); text made of several pieces is copied into
 * one per-request buffer that dp_features_cleanup() frees. Texts are NOT NUL-terminated in
 * general (a borrowed text cut at DP_FEATURES_MAX_TEXT goes on): use the lengths.
 * Worker thread of the request; the struct is not shared.
 */
#ifndef DP_FEATURES_H
#define DP_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define DP_FEATURES_MAX_TAGS 32          /* more tags are ignored (counted in n_dropped) */
#define DP_FEATURES_MAX_TAG_LEN 128      /* longer tags are ignored (counted in n_dropped) */
#define DP_FEATURES_MAX_COMPLIANCE 16    /* same rules as tags */
#define DP_FEATURES_MAX_TEXT (64 * 1024) /* bytes kept of last_user and of system each */

/* Header names read. */
#define DP_HDR_TAGS "x-switchyard-tags"             /* "a, b,c" */
#define DP_HDR_REGION "x-switchyard-region"         /* "eu" */
#define DP_HDR_COMPLIANCE "x-switchyard-compliance" /* "hipaa,soc2" */

/* Returns the value of request header <name> (case-insensitive), or NULL. The value must
 * stay valid as long as the features. */
typedef const char *(*dp_header_get_fn)(void *arg, const char *name);

/* A borrowed or per-request byte range; p is never NULL once extracted ("" when empty). */
struct dp_text {
    const char *p;
    size_t len;
};

struct dp_features {
    const char *model; /* "model", borrowed; NULL when absent or not a string */

    /* Tags: the x-switchyard-tags header split at ',' and trimmed (empty items dropped),
     * then the keys of the body's "metadata" object, in that order; duplicates kept. */
    struct dp_text tags[DP_FEATURES_MAX_TAGS];
    size_t n_tags;
    struct dp_text region; /* x-switchyard-region, trimmed; len 0 when absent */
    struct dp_text compliance[DP_FEATURES_MAX_COMPLIANCE]; /* x-switchyard-compliance */
    size_t n_compliance;
    size_t n_dropped; /* tags and compliance items ignored for count or length */

    int64_t prompt_tokens; /* estimate, see dp_features_extract() */
    int64_t n_messages;
    bool has_tools;     /* non-empty "tools" or "functions" */
    bool has_images;    /* a content part of type image_url or input_image */
    bool json_mode;     /* response_format.type json_object or json_schema */
    bool stream;        /* "stream": true */
    int64_t max_tokens; /* max_tokens / max_completion_tokens; 0 = unset (set by dp_chat) */

    /* The last message with role "user", and every "system"/"developer" message joined by
     * '\n'; text parts of array contents are joined by '\n' too. At most
     * DP_FEATURES_MAX_TEXT bytes each (the start is kept). */
    struct dp_text last_user;
    struct dp_text system;
    bool last_user_cut, system_cut; /* true when the text was longer than the cap */

    /* Cache affinity: h = XXH64(system text, seed 0) (skipped when empty, h = 0), then
     * h = XXH64(piece, seed h) for each text piece of the FIRST user message (at most
     * DP_FEATURES_MAX_TEXT bytes in all). Every turn of a conversation hashes alike, and the
     * value is the same in every process and version, so all proxies send one conversation
     * to the same target. 0 when both texts are empty. */
    uint64_t affinity_hash;

    char *buf; /* owned: texts that had to be joined; NULL when everything is borrowed */
};

/* Fills <out> from the request body <req> (a parsed chat completion request; legacy
 * "prompt" and embeddings "input" strings count as user messages) and from the headers,
 * read through <get_header>(<hdr_arg>, name) (NULL: no headers).
 *
 * prompt_tokens = (bytes of all message text) / 4 + 3 x messages + (bytes of the tool
 * schemas) / 4, where message text is string contents, the "text" of text parts and the
 * names and arguments of assistant tool calls, and a tool schema's bytes are approximated
 * by walking its tree (keys and strings by length, other values 4) instead of printing it.
 * Images are not counted. About 4 bytes per token is right for English and code; it is an
 * estimate for routing thresholds and cost ranking, never for billing.
 *
 * Returns 0, -EINVAL when <req> is not a JSON object (out is then zeroed and needs no
 * cleanup), or -ENOMEM when the text buffer could not be allocated (out holds what was
 * read before, without texts; call dp_features_cleanup either way). */
int dp_features_extract(const struct cJSON *req, dp_header_get_fn get_header, void *hdr_arg,
                        struct dp_features *out);

/* Frees what extraction allocated; <f> may be reused. Accepts a zeroed struct. */
void dp_features_cleanup(struct dp_features *f);

/* True when <tag> (NUL-terminated) is among f's tags, compared ASCII-case-insensitively. */
bool dp_features_has_tag(const struct dp_features *f, const char *tag);

/* XXH64 of <len> bytes at <p> with <seed>: what affinity_hash is made of. Any thread. */
uint64_t dp_hash64(const void *p, size_t len, uint64_t seed);

#endif
