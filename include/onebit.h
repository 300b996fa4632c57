/* onebit: run exported binary neural networks (.onebit files) from C or C++.
 *
 *   char err[512];
 *   onebit_model *m = onebit_load("model.onebit", err, sizeof err);     // NULL on error, message in err
 *   int64_t shape[3] = {1, 1024, 3};                                    // one cloud of 1024 xyz points
 *   int64_t n = onebit_output_size(m, shape, 3);                        // floats run() writes (40 logits)
 *   float *logits = malloc(n * sizeof(float));
 *   if (onebit_run(m, points, shape, 3, logits, n, 1, err, sizeof err) != 0) puts(err);
 *   onebit_free(m);
 *
 * Inputs have the shapes the Python runtime takes: point clouds (B, N, C) or (N, C); images (B, C, H, W),
 * or (B, H, W) / (H, W) for one channel (NCHW, float32, C order). The output is (B, classes) logits for a
 * pooled model (rows x channels per cloud otherwise, as onebit_output_size says).
 *
 * No exception crosses this interface; every error is a return value with a one-line message naming the
 * file. Calls on distinct models are independent, and onebit_run may be called from several threads on
 * one model at once. The kernel path is chosen at load: $ONEBIT_ISA (avx512, avx2, neon, scalar) or the
 * best this CPU supports.
 */
#ifndef ONEBIT_H
#define ONEBIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct onebit_model onebit_model;

/* Load and validate a .onebit file. NULL on error, with the message in err (err_len bytes, NUL-terminated). */
onebit_model *onebit_load(const char *path, char *err, size_t err_len);

/* Number of floats onebit_run writes for an input of this shape, or -1 if the shape is not accepted. */
int64_t onebit_output_size(const onebit_model *m, const int64_t *shape, int ndim);

/* Run the model on `input` (float32, C order, of the given shape); writes the outputs to out (out_len floats
 * available). threads >= 1 (clouds of a batch go to threads). Returns 0, or -1 with the message in err. */
int onebit_run(onebit_model *m, const float *input, const int64_t *shape, int ndim, float *out, int64_t out_len,
               int threads, char *err, size_t err_len);

/* The kernel path of this model: "avx512", "avx2", "neon" or "scalar". */
const char *onebit_isa(const onebit_model *m);

/* Free a model (NULL is allowed). */
void onebit_free(onebit_model *m);

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *onebit_version(void);

#ifdef __cplusplus
}
#endif

#endif /* ONEBIT_H */
