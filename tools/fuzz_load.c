/* onebit-fuzz-load FILE...: load every file through the C API; when one loads, run it on a small input.
 * Prints "ok" or "error: MESSAGE" per file, one line each. Built with -DONEBIT_SANITIZE=ON, a memory error
 * or undefined behaviour aborts the process with the sanitizer's report instead (the test looks for that). */
#include <stdio.h>
#include <string.h>

#include "onebit.h"

int main(int argc, char **argv) {
    char err[1024];
    static float input[4096 * 4];
    static float out[1 << 16];
    for (int i = 1; i < argc; ++i) {
        onebit_model *m = onebit_load(argv[i], err, sizeof err);
        if (!m) {
            printf("error: %s\n", err);
            continue;
        }
        for (int k = 0; k < 4096 * 4; ++k) input[k] = (float)((k * 37 % 101) - 50) / 25.0f;
        int ok = 1;
        for (int c = 1; c <= 4 && ok; ++c) { /* whichever channel count the model takes */
            int64_t shape[3] = {2, 64, c};
            int64_t n = onebit_output_size(m, shape, 3);
            if (n < 0 || n > (int64_t)(sizeof out / sizeof out[0])) continue;
            if (onebit_run(m, input, shape, 3, out, n, 2, err, sizeof err) != 0) {
                printf("error: %s\n", err);
                ok = 0;
            }
        }
        if (ok) printf("ok\n");
        onebit_free(m);
    }
    return 0;
}
