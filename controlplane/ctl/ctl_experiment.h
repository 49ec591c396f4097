/* controlplane/ctl/ctl_experiment.h - `switchyardctl experiment list|status NAME|promote
 * NAME ARM` (GET /v1/experiments[/NAME], POST /v1/experiments/NAME/promote).
 *
 * Single-threaded. The print function is split from the request so tests can feed it JSON;
 * see ctl_policy.h for the error convention. */
#ifndef CTL_EXPERIMENT_H
#define CTL_EXPERIMENT_H

#include <cJSON.h>
#include <stddef.h>
#include <stdio.h>

#include "ctl_args.h"

int ctl_experiment_list(const struct ctl_args *a);
int ctl_experiment_status(const struct ctl_args *a);
int ctl_experiment_promote(const struct ctl_args *a);

/* Prints one experiment (an element of GET /v1/experiments): a summary, a table of its arms
 * and the test. Returns 0, or -EINVAL with *errmsg naming what is missing. */
int ctl_experiment_print(FILE *out, const cJSON *x, size_t width, char **errmsg);

#endif
