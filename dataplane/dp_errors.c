/* dataplane/dp_errors.c - OpenAI error objects. Stateless; any thread. */
#include "dp_errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_http.h"
#include "sy_util.h"

const char *dp_error_type_for(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "invalid_request_error";
    case 429:
        return "rate_limit_error";
    default:
        if (status >= 500)
            return status == 502 || status == 504 ? "upstream_error" : "server_error";
        return "invalid_request_error";
    }
}

char *dp_error_json(int status, const char *type, const char *code, const char *param,
                    const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    char *out;

    cJSON_AddStringToObject(err, "message", message);
    cJSON_AddStringToObject(err, "type", type ? type : dp_error_type_for(status));
    if (param)
        cJSON_AddStringToObject(err, "param", param);
    else
        cJSON_AddNullToObject(err, "param");
    if (code)
        cJSON_AddStringToObject(err, "code", code);
    else
        cJSON_AddNullToObject(err, "code");
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!out)
        abort();
    return out;
}

char *dp_error_body(int status, const char *message)
{
    const char *code = NULL;
    if (status == 413)
        code = "request_too_large";
    else if (status == 408)
        code = "request_timeout";
    else if (status == 431)
        code = "headers_too_large";
    return dp_error_json(status, NULL, code, NULL, message);
}

void dp_error_reply(struct sy_http_req *req, int status, const char *type, const char *code,
                    const char *param, const char *message)
{
    char *body = dp_error_json(status, type, code, param, message);
    sy_http_reply(req, status, "application/json", body, strlen(body));
    free(body);
}

void dp_error_replyf(struct sy_http_req *req, int status, const char *type, const char *code,
                     const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dp_error_reply(req, status, type, code, param, msg);
}
