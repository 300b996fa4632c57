/* Classify one point cloud with a .onebit model through the C API (include/onebit.h).
 *
 *   classify MODEL POINTS.f32
 *
 * POINTS.f32 holds N x C float32 values (little-endian, row after row: x y z of each point), e.g. written
 * by NumPy's points.astype("<f4").tofile("points.f32"). Prints the predicted class, then the logits.
 */
#include <stdio.h>
#include <stdlib.h>

#include "onebit.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL POINTS.f32\n", argv[0]);
        return 2;
    }
    char err[512];
    onebit_model *m = onebit_load(argv[1], err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot read\n", argv[2]);
        onebit_free(m);
        return 1;
    }
    size_t cap = 1024, n = 0;
    float *pts = malloc(cap * sizeof(float));
    size_t got;
    while (pts && (got = fread(pts + n, sizeof(float), cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            float *grown = realloc(pts, 2 * cap * sizeof(float));
            if (!grown) break;
            pts = grown;
            cap *= 2;
        }
    }
    fclose(f);
    const int64_t channels = 3;
    int64_t shape[3] = {1, (int64_t)(n / channels), channels};
    int64_t out_len = onebit_output_size(m, shape, 3);
    if (!pts || n % channels || out_len < 0) {
        fprintf(stderr, "%s: expected N x %lld float32 values the model accepts\n", argv[2], (long long)channels);
        free(pts);
        onebit_free(m);
        return 1;
    }
    float *logits = malloc((size_t)out_len * sizeof(float));
    int rc = onebit_run(m, pts, shape, 3, logits, out_len, 1, err, sizeof err);
    if (rc == 0) {
        int64_t best = 0;
        for (int64_t c = 1; c < out_len; ++c)
            if (logits[c] > logits[best]) best = c;
        printf("class %lld (isa %s, onebit %s)\n", (long long)best, onebit_isa(m), onebit_version());
        for (int64_t c = 0; c < out_len; ++c) printf("%.9g%c", logits[c], c + 1 < out_len ? ' ' : '\n');
    } else {
        fprintf(stderr, "%s\n", err);
    }
    free(logits);
    free(pts);
    onebit_free(m);
    return rc == 0 ? 0 : 1;
}
