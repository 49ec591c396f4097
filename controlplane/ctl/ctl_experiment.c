/* controlplane/ctl/ctl_experiment.c - experiments: list, status, promote. */
#include "ctl_experiment.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl_http.h"
#include "ctl_reply.h"
#include "ctl_table.h"
#include "sy_util.h"

static const char *str_or(const cJSON *o, const char *k, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* A number cell: "-" for null or absent. */
static void num_cell(struct ctl_table *t, const cJSON *o, const char *k, int decimals, double scale,
                     const char *suffix)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    if (cJSON_IsNumber(v))
        ctl_table_cellf(t, "%.*f%s", decimals, v->valuedouble * scale, suffix);
    else
        ctl_table_cell(t, "-");
}

int ctl_experiment_print(FILE *out, const cJSON *x, size_t width, char **errmsg)
{
    static const char *const headers[] = {"ARM",      "MODEL",   "SHARE",  "REQUESTS",
                                          "FEEDBACK", "UP RATE", "95% CI", "P(BEST)",
                                          "P50 MS",   "$/REQ",   "ERRORS"};
    const cJSON *arms, *arm, *test, *ci, *lat;
    const char *winner = str_or(x, "winner", NULL);
    struct ctl_table *t;

    if (ctl_json_array(x, "experiment", "arms", &arms, errmsg) < 0)
        return -EINVAL;
    fprintf(out, "experiment %s on route %s: %s", str_or(x, "name", "?"), str_or(x, "route", "?"),
            str_or(x, "status", "?"));
    if (winner)
        fprintf(out, ", winner %s", winner);
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "promoted_arm")))
        fprintf(out, " (arm %s promoted)", str_or(x, "promoted_arm", "?"));
    fprintf(out, "\nmetric %s, stop rule %s, at least %.0f samples per arm\n\n",
            str_or(x, "metric", "?"), str_or(x, "stop_rule", "?"),
            cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "min_samples")));
    t = ctl_table_new(SY_ARRAY_LEN(headers), headers);
    cJSON_ArrayForEach(arm, arms)
    {
        ctl_table_cell(t, str_or(arm, "name", "?"));
        ctl_table_cell(t, str_or(arm, "model", "?"));
        num_cell(t, arm, "share", 0, 1, "");
        num_cell(t, arm, "requests", 0, 1, "");
        num_cell(t, arm, "feedback", 0, 1, "");
        num_cell(t, arm, "up_rate", 1, 100, "%");
        ci = cJSON_GetObjectItemCaseSensitive(arm, "ci95");
        if (cJSON_GetArraySize(ci) == 2)
            ctl_table_cellf(t, "%.2f-%.2f", cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 0)),
                            cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 1)));
        else
            ctl_table_cell(t, "-");
        num_cell(t, arm, "prob_best", 3, 1, "");
        lat = cJSON_GetObjectItemCaseSensitive(arm, "latency_ms");
        num_cell(t, lat, "p50", 1, 1, "");
        num_cell(t, arm, "cost_per_request_usd", 6, 1, "");
        num_cell(t, arm, "error_rate", 1, 100, "%");
    }
    ctl_table_print(t, out, width);
    ctl_table_free(t);
    test = cJSON_GetObjectItemCaseSensitive(x, "test");
    if (cJSON_IsObject(test))
        fprintf(out, "\ntwo-proportion z-test %s vs %s: z %.3f, p %.4f (%s)\n",
                str_or(test, "arms", "?"), str_or(test, "versus", "?"),
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(test, "z")),
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(test, "p_value")),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(test, "significant"))
                    ? "significant"
                    : "not significant");
    return 0;
}

int ctl_experiment_list(const struct ctl_args *a)
{
    static const char *const headers[] = {"NAME", "ROUTE", "METRIC", "STATUS", "WINNER", "ARMS"};
    const cJSON *list, *x, *arm;
    char *errmsg = NULL;
    cJSON *reply;
    struct ctl_table *t;
    int rc;

    rc = ctl_call(a, "GET", "/v1/experiments", NULL, NULL, 0, &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json) {
        ctl_json_print(stdout, reply);
        cJSON_Delete(reply);
        return rc;
    }
    if (ctl_json_array(reply, "reply", "experiments", &list, &errmsg) < 0) {
        cJSON_Delete(reply);
        return ctl_unexpected(errmsg);
    }
    if (cJSON_GetArraySize(list) == 0) {
        puts("no experiments");
        cJSON_Delete(reply);
        return rc;
    }
    t = ctl_table_new(SY_ARRAY_LEN(headers), headers);
    ctl_table_set_flex(t, 5);
    cJSON_ArrayForEach(x, list)
    {
        char arms[512] = "";
        size_t off = 0;

        ctl_table_cell(t, str_or(x, "name", "?"));
        ctl_table_cell(t, str_or(x, "route", "?"));
        ctl_table_cell(t, str_or(x, "metric", "?"));
        ctl_table_cell(t, str_or(x, "status", "?"));
        ctl_table_cell(t, str_or(x, "promoted_arm", str_or(x, "winner", "-")));
        cJSON_ArrayForEach(arm, cJSON_GetObjectItemCaseSensitive(x, "arms"))
        {
            int n = snprintf(arms + off, sizeof(arms) - off, "%s%s", off ? ", " : "",
                             str_or(arm, "name", "?"));
            if (n < 0 || (size_t)n >= sizeof(arms) - off)
                break;
            off += (size_t)n;
        }
        ctl_table_cell(t, arms);
    }
    ctl_table_print(t, stdout, ctl_term_width());
    ctl_table_free(t);
    cJSON_Delete(reply);
    return rc;
}

/* "/v1/experiments/<escaped name><suffix>" */
static char *path_for(const char *name, const char *suffix)
{
    char *esc = curl_easy_escape(NULL, name, 0);
    char *p = sy_xasprintf("/v1/experiments/%s%s", esc ? esc : "", suffix);
    curl_free(esc);
    return p;
}

int ctl_experiment_status(const struct ctl_args *a)
{
    char *path = path_for(a->name, ""), *errmsg = NULL;
    cJSON *reply;
    int rc = ctl_call(a, "GET", path, NULL, NULL, 0, &reply);

    free(path);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else if (ctl_experiment_print(stdout, reply, ctl_term_width(), &errmsg) < 0)
        rc = ctl_unexpected(errmsg);
    cJSON_Delete(reply);
    return rc;
}

int ctl_experiment_promote(const struct ctl_args *a)
{
    char *path = path_for(a->name, "/promote");
    cJSON *body = cJSON_CreateObject(), *reply;
    char *text;
    int rc;

    cJSON_AddStringToObject(body, "arm", a->arm);
    text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    rc = ctl_call(a, "POST", path, "application/json", text, strlen(text), &reply);
    free(text);
    free(path);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else
        printf("experiment %s: arm %s promoted; version %.0f is active (was %.0f)\n", a->name,
               a->arm, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(reply, "version")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(reply, "from_version")));
    cJSON_Delete(reply);
    return rc;
}
