/* controlplane/cp_reply.h - JSON answers for the admin API's handlers (cp_admin.c and the
 * modules that register their own paths with cp_admin_add_route). Main thread. */
#ifndef CP_REPLY_H
#define CP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;
struct sy_http_req;

/* {"error":{"message","type","code","param":null}} as a heap string (caller frees). <code>
 * may be NULL (JSON null). */
char *cp_error_json(const char *type, const char *code, const char *message);

/* The HTTP server's own error answers (413, 408, ...), for sy_http_server_new. */
char *cp_server_error_body(int status, const char *message);

/* Answers <status> with <root> printed unformatted; takes and frees <root>. */
void cp_reply_json(struct sy_http_req *req, int status, struct cJSON *root);

/* Answers <status> with an error object: type server_error for 5xx, else
 * invalid_request_error; <code> names the problem ("invalid_window"). */
void cp_reply_error(struct sy_http_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Finds <name> in the query string <query> (may be NULL) and percent-decodes its value into
 * <out> (cut to cap - 1 bytes). False when absent. */
bool cp_query_param(const char *query, const char *name, char *out, size_t cap);

#endif
