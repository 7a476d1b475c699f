/* dpotrf alone, the reference for blas-tuning's Cholesky (issue 17): OpenBLAS's routine on a
 * column-major symmetric positive definite matrix (M M^T / n + I, as the suite builds it),
 * copied into the factored buffer outside the timing. Prints the median and best of 9 runs.
 *
 *   cc -O2 -o /tmp/dpotrf-alone crates/blas-tuning/tools/dpotrf-alone.c -lopenblas
 *   OPENBLAS_NUM_THREADS=2 /tmp/dpotrf-alone 2048
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2048;
    if (n <= 0) {
        fprintf(stderr, "usage: %s N\n", argv[0]);
        return 2;
    }
    size_t nn = (size_t)n * n;
    double *m = malloc(nn * sizeof *m), *a = malloc(nn * sizeof *a), *w = malloc(nn * sizeof *w);
    if (!m || !a || !w) {
        fprintf(stderr, "out of memory for n = %d\n", n);
        return 1;
    }
    unsigned long long s = 0x5eed;
    for (size_t i = 0; i < nn; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        m[i] = 2.0 * ((s >> 11) * (1.0 / 9007199254740992.0)) - 1.0;
    }
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0 / n, m, n, m, n, 0.0, a, n);
    for (int i = 0; i < n; i++) a[(size_t)i * n + i] += 1.0;
    enum { RUNS = 9 };
    double t[RUNS];
    for (int r = -1; r < RUNS; r++) {
        memcpy(w, a, nn * sizeof *w);
        int info = 0;
        double t0 = now();
        dpotrf_("L", &n, w, &n, &info);
        double dt = now() - t0;
        if (info != 0) {
            fprintf(stderr, "dpotrf failed: info %d\n", info);
            return 1;
        }
        if (r >= 0) t[r] = dt;
    }
    qsort(t, RUNS, sizeof t[0], by_value);
    double flop = (double)n * n * n / 3.0;
    printf("dpotrf n=%d threads=%d: median %.1f ms (%.1f GFLOP/s), best %.1f ms\n", n,
           openblas_get_num_threads(), 1e3 * t[RUNS / 2], flop / t[RUNS / 2] / 1e9, 1e3 * t[0]);
    free(m);
    free(a);
    free(w);
    return 0;
}
