/* controlplane/cp_reply.c - JSON answers for the admin API. */
#include "cp_reply.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_http.h"

char *cp_error_json(const char *type, const char *code, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    char *out;

    cJSON_AddStringToObject(err, "message", message);
    cJSON_AddStringToObject(err, "type", type);
    if (code)
        cJSON_AddStringToObject(err, "code", code);
    else
        cJSON_AddNullToObject(err, "code");
    cJSON_AddNullToObject(err, "param");
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

char *cp_server_error_body(int status, const char *message)
{
    return cp_error_json(status >= 500 ? "server_error" : "invalid_request_error", NULL, message);
}

void cp_reply_json(struct sy_http_req *req, int status, cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    sy_http_reply(req, status, "application/json", text, strlen(text));
    free(text);
    cJSON_Delete(root);
}

void cp_reply_error(struct sy_http_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    char *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    body = cp_error_json(status >= 500 ? "server_error" : "invalid_request_error", code, msg);
    sy_http_reply(req, status, "application/json", body, strlen(body));
    free(body);
}

bool cp_query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = query;

    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < cap; i++) {
                char c = p[i];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && i + 2 < len && isxdigit((unsigned char)p[i + 1]) &&
                           isxdigit((unsigned char)p[i + 2])) {
                    char hex[3] = {p[i + 1], p[i + 2], 0};
                    c = (char)strtol(hex, NULL, 16);
                    i += 2;
                }
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}
