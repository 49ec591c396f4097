/* controlplane/ctl/ctl_http.h - one admin API request with libcurl's easy API.
 *
 * Every command goes through ctl_call, which is where the CLI's exit codes are decided:
 * no answer is CTL_EXIT_UNREACHABLE, an error status or a reply that is not a JSON
 * object is CTL_EXIT_SERVER. Replies are capped at CTL_MAX_REPLY bytes. Call
 * curl_global_init() once before the first request. Single-threaded.
 */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <cJSON.h>
#include <stddef.h>

#include "ctl_args.h"

#define CTL_MAX_REPLY (64u * 1024 * 1024)
#define CTL_CONNECT_TIMEOUT_MS 2000L

struct ctl_reply {
    long status;
    char *body; /* NUL-terminated (may hold NULs before <len>); NULL when empty */
    size_t len;
};

/* Frees the body of <r> (embedded; <r> itself is the caller's). */
void ctl_reply_cleanup(struct ctl_reply *r);

/* Sends <method> ("GET" or "POST") to <a>->server + <path> with <body> (<len> bytes, may
 * be NULL for none) as <ctype>. Fills *r with the status and body of any answer.
 * Returns 0 when the server answered (whatever the status), -EHOSTUNREACH when it did not
 * (refused, DNS, TLS, timeout: *errmsg names the server and curl's reason), -EFBIG when
 * the reply exceeded CTL_MAX_REPLY, -ENOMEM. *errmsg is for the caller to free. */
int ctl_http_request(const struct ctl_args *a, const char *method, const char *path,
                     const char *ctype, const char *body, size_t len, struct ctl_reply *r,
                     char **errmsg);

/* Does one request and decides its outcome, printing any message to stderr. Returns
 * CTL_EXIT_OK with *out set to the reply's JSON object (caller frees with cJSON_Delete),
 * or another exit code with *out NULL. With --json, an error reply that is JSON is also
 * printed to stdout so scripts see it. */
int ctl_call(const struct ctl_args *a, const char *method, const char *path, const char *ctype,
             const char *body, size_t len, cJSON **out);

#endif
