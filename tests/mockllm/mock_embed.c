/* tests/mockllm/mock_embed.c - deterministic embedding vectors (see mock_embed.h).
 *
 * FNV-1a of the text seeds splitmix64; each output is mapped to [-1, 1) and the vector is
 * normalised. Pure functions.
 */
#include "mock_embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void mock_embed(const char *text, int dims, float *v)
{
    uint64_t h = fnv1a64(text);
    double norm = 0;

    for (int i = 0; i < dims; i++) {
        double x = (double)(splitmix64(h + (uint64_t)i) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        v[i] = (float)x;
        norm += x * x;
    }
    norm = sqrt(norm);
    for (int i = 0; i < dims && norm > 0; i++)
        v[i] = (float)(v[i] / norm);
}

char *mock_embed_base64(const float *v, int dims)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nbytes = (size_t)dims * 4, o = 0;
    unsigned char *b = malloc(nbytes);
    char *s = malloc((nbytes + 2) / 3 * 4 + 1);

    if (!b || !s)
        goto out_free;
    for (int i = 0; i < dims; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            b[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    for (size_t i = 0; i < nbytes; i += 3) {
        uint32_t t = (uint32_t)b[i] << 16;
        if (i + 1 < nbytes)
            t |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < nbytes)
            t |= b[i + 2];
        s[o++] = abc[(t >> 18) & 63];
        s[o++] = abc[(t >> 12) & 63];
        s[o++] = i + 1 < nbytes ? abc[(t >> 6) & 63] : '=';
        s[o++] = i + 2 < nbytes ? abc[t & 63] : '=';
    }
    s[o] = '\0';
    free(b);
    return s;

out_free:
    free(b);
    free(s);
    return NULL;
}
