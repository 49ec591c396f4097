/* tests/unit/fixture.h - reading golden fixture files in cmocka unit tests.
 *
 * Header-only, for test programs: the including file defines FIXTURE_DIR (relative to the
 * test's working directory, its source directory) before including it. Failures end the
 * test with the fixture's path.
 */
#ifndef SY_TEST_FIXTURE_H
#define SY_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#ifndef FIXTURE_DIR
#error "define FIXTURE_DIR before including fixture.h"
#endif

/* The whole fixture <name>, NUL-terminated (caller frees); its length in *len if given. */
static char *read_fixture(const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    long n;
    char *buf;

    snprintf(path, sizeof(path), FIXTURE_DIR "%s", name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* The fixture <name> parsed as JSON (caller frees with cJSON_Delete). */
static cJSON *parse_fixture(const char *name)
{
    char *text = read_fixture(name, NULL);
    cJSON *j = cJSON_Parse(text);

    if (!j)
        fail_msg("fixture %s is not JSON", name);
    free(text);
    return j;
}

#endif
