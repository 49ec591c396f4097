/* dataplane/dp_errors.h - OpenAI error objects: building them and answering with them.
 *
 * Every error the proxy returns goes through here so the shape never drifts:
 * {"error":{"message":"...","type":"...","param":null|"...","code":null|"..."}}.
 * Stateless; any thread.
 */
#ifndef DP_ERRORS_H
#define DP_ERRORS_H

struct sy_http_req;

/* Returns a heap JSON error object (caller frees). <type> defaults from <status> when NULL;
 * <param> and <code> may be NULL (rendered as JSON null). */
char *dp_error_json(int status, const char *type, const char *code, const char *param,
                    const char *message);

/* The default OpenAI error type for an HTTP status. */
const char *dp_error_type_for(int status);

/* For sy_http_server_new: the body of the server's own error answers. */
char *dp_error_body(int status, const char *message);

/* Answers <req> with an error object and <status>. */
void dp_error_reply(struct sy_http_req *req, int status, const char *type, const char *code,
                    const char *param, const char *message);

/* The same with a printf-formatted message. */
void dp_error_replyf(struct sy_http_req *req, int status, const char *type, const char *code,
                     const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
