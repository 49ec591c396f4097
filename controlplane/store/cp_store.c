/* controlplane/store/cp_store.c - opening a store from its spec; cp_kv helpers. */
#include "cp_store.h"

#include <stdlib.h>
#include <string.h>

#include "cp_store_etcd.h"
#include "cp_store_file.h"
#include "sy_util.h"

struct cp_store *cp_store_open(const char *spec, const char *prefix, char **errmsg)
{
    if (strncmp(spec, "file:", 5) == 0 && spec[5])
        return cp_store_file_open(spec + 5, errmsg);
    if (strncmp(spec, "etcd:", 5) == 0 && spec[5])
        return cp_store_etcd_open(spec + 5, prefix, errmsg);
    *errmsg = sy_xasprintf("--store %s: expected file:DIR or etcd:http://HOST:PORT[,...]", spec);
    return NULL;
}

void cp_kv_free(struct cp_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    free(kv);
}

void cp_kv_array_free(struct cp_kv *kvs, size_t n)
{
    for (size_t i = 0; i < n && kvs; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}
