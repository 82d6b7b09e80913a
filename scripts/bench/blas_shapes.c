/* The BLAS libraries Debian ships, on the project's matmul shapes, one thread: the other half of
 * `cargo run --release -p lsnn-bench --bin fma-peak`'s gemm lines (design §9.4). Not built by the
 * project; measured by hand, in one sitting with fma-peak:
 *
 *   apt-get install libopenblas-dev libblis-dev
 *   gcc -O2 scripts/bench/blas_shapes.c -o /tmp/blas_shapes \
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
 *   OPENBLAS_NUM_THREADS=1 /tmp/blas_shapes                       # the core type it picks
 *   OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=SkylakeX /tmp/blas_shapes
 *   gcc -O2 -DNO_OPENBLAS scripts/bench/blas_shapes.c -o /tmp/blis_shapes \
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread \
 *       -L/usr/lib/x86_64-linux-gnu/blis-openmp -l:libblis.so.4 \
 *       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/blis-openmp
 *   BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1 BLIS_ARCH_DEBUG=1 /tmp/blis_shapes
 *   BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1 BLIS_ARCH_TYPE=skx /tmp/blis_shapes
 *
 * Each shape: row-major f32 C = A·B through cblas_sgemm, best of 5 timings of about a second.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef NO_OPENBLAS
char *openblas_get_corename(void);
char *openblas_get_config(void);
#endif

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void product(int m, int n, int k, const float *a, const float *b, float *c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

int main(void) {
  /* m, n, k: the same shapes as fma-peak's gemm lines. */
  static const int shapes[4][3] = {{256, 512, 128}, {256, 2048, 512}, {512, 2048, 256}, {4, 256, 64}};
#ifndef NO_OPENBLAS
  printf("OpenBLAS core %s | %s\n", openblas_get_corename(), openblas_get_config());
#endif
  for (int s = 0; s < 4; s++) {
    int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n),
          *c = malloc(sizeof(float) * m * n);
    if (!a || !b || !c) {
      fprintf(stderr, "out of memory\n");
      return 1;
    }
    for (int i = 0; i < m * k; i++) a[i] = (i % 13 - 6) * 0.01f;
    for (int i = 0; i < k * n; i++) b[i] = (i % 7 - 3) * 0.02f;
    product(m, n, k, a, b, c);
    double t = seconds_now();
    product(m, n, k, a, b, c);
    double once = seconds_now() - t;
    int count = once > 0 ? (int)(1.0 / once) : 1000;
    if (count < 1) count = 1;
    double best = 0;
    for (int r = 0; r < 5; r++) {
      t = seconds_now();
      for (int i = 0; i < count; i++) product(m, n, k, a, b, c);
      double g = 2.0 * m * n * k * count / (seconds_now() - t) / 1e9;
      if (g > best) best = g;
    }
    printf("[%d x %d] . [%d x %d]: %.1f GFLOP/s\n", m, k, k, n, best);
    free(a);
    free(b);
    free(c);
  }
  return 0;
}
