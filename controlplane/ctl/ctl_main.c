/* controlplane/ctl/ctl_main.c - switchyardctl: the operator CLI for the control plane's
 * admin HTTP/JSON API. Parses the command line, runs one command, exits with its code.
 *
 * Exit codes (docs/switchyardctl.md): 0 success, 1 the server answered an error, 2 usage
 * error, 3 cannot reach the server. Single-threaded; libcurl is initialised once here.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_args.h"
#include "ctl_experiment.h"
#include "ctl_fleet.h"
#include "ctl_http.h"
#include "ctl_learn.h"
#include "ctl_policy.h"
#include "ctl_pricing.h"
#include "ctl_reply.h"
#include "ctl_table.h"
#include "sy_json.h"
#include "sy_util.h"

/* `version`: the client's version always; the server's /healthz body when it answers. A
 * server that cannot be reached is reported but is not a failure: the command's first job
 * is to say which client this is. */
static int cmd_version(const struct ctl_args *a)
{
    struct ctl_reply r;
    char *errmsg = NULL;
    cJSON *health = NULL;
    int rc;

    rc = ctl_http_request(a, "GET", "/healthz", NULL, NULL, 0, &r, &errmsg);
    if (rc == 0)
        health = sy_json_parse(r.body ? r.body : "", r.len, NULL);
    if (a->json) {
        cJSON *out = cJSON_CreateObject();

        cJSON_AddStringToObject(out, "client", CTL_VERSION);
        cJSON_AddStringToObject(out, "server_url", a->server);
        if (rc < 0) {
            cJSON_AddNullToObject(out, "server");
            cJSON_AddStringToObject(out, "server_error", errmsg);
        } else {
            cJSON_AddNumberToObject(out, "server_status", (double)r.status);
            if (health) {
                cJSON_AddItemToObject(out, "server", health);
                health = NULL;
            } else {
                cJSON_AddStringToObject(out, "server", r.body ? r.body : "");
            }
        }
        ctl_json_print(stdout, out);
        cJSON_Delete(out);
    } else {
        printf("switchyardctl %s\n", CTL_VERSION);
        if (rc < 0) {
            char *clean = ctl_sanitize(errmsg);
            printf("server: %s\n", clean);
            free(clean);
        } else {
            char *body = sy_xstrndup(r.body ? r.body : "", r.len);
            char *clean;
            size_t n = strlen(body);

            while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
                body[--n] = '\0';
            clean = ctl_sanitize(body);
            if (r.status >= 200 && r.status <= 299)
                printf("server: %s (%s)\n", a->server, clean);
            else
                printf("server: %s answered HTTP %ld (%s)\n", a->server, r.status, clean);
            free(clean);
            free(body);
        }
    }
    cJSON_Delete(health);
    if (rc == 0)
        ctl_reply_cleanup(&r);
    free(errmsg);
    return CTL_EXIT_OK;
}

static int run(const struct ctl_args *a)
{
    switch (a->cmd) {
    case CTL_CMD_HELP:
        ctl_usage(stdout);
        return CTL_EXIT_OK;
    case CTL_CMD_POLICY_PUSH:
        return ctl_policy_push(a);
    case CTL_CMD_POLICY_LIST:
        return ctl_policy_list(a);
    case CTL_CMD_POLICY_GET:
        return ctl_policy_get(a);
    case CTL_CMD_POLICY_DIFF:
        return ctl_policy_diff(a);
    case CTL_CMD_POLICY_ACTIVATE:
        return ctl_policy_activate(a);
    case CTL_CMD_FLEET:
        return ctl_fleet(a);
    case CTL_CMD_VERSION:
        return cmd_version(a);
    case CTL_CMD_PRICING:
        return ctl_pricing(a);
    case CTL_CMD_EXPERIMENT_LIST:
        return ctl_experiment_list(a);
    case CTL_CMD_EXPERIMENT_STATUS:
        return ctl_experiment_status(a);
    case CTL_CMD_EXPERIMENT_PROMOTE:
        return ctl_experiment_promote(a);
    case CTL_CMD_LEARN_STATUS:
        return ctl_learn_status(a);
    case CTL_CMD_LEARN_FREEZE:
    case CTL_CMD_LEARN_UNFREEZE:
    case CTL_CMD_LEARN_ROLLBACK:
        return ctl_learn_action(a);
    }
    return CTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct ctl_args args;
    char *errmsg = NULL;
    int rc;

    if (ctl_args_parse(argc, argv, getenv("SWITCHYARD_SERVER"), &args, &errmsg) < 0) {
        char *clean = ctl_sanitize(errmsg);

        ctl_errorf("%s", clean);
        fputs("run 'switchyardctl --help' for usage\n", stderr);
        free(clean);
        free(errmsg);
        return CTL_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ctl_errorf("cannot initialise libcurl");
        return CTL_EXIT_UNREACHABLE;
    }
    rc = run(&args);
    curl_global_cleanup();
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK) {
        ctl_errorf("cannot write output");
        rc = CTL_EXIT_SERVER;
    }
    return rc;
}
