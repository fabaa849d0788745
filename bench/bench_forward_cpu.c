/* bench_forward_cpu.c: eval throughput of the CPU forward pass on a synthetic
 * model (default dim 1024, hidden 2752, 4 layers, 16 heads, vocab 32000, seqlen
 * 512): tokens/s and achieved GFLOP/s (forward_flops), reported as a fraction
 * of OpenBLAS sgemm's GFLOP/s: the best rate over the model's own GEMM shapes
 * (linear layers and head), measured in the same run. Usage: bench_forward_cpu [dim hidden layers heads vocab seqlen windows] */
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"
#include "forward.h"
#include "model.h"
#include "util.h"

int main(int argc, char **argv) {
    long a[7] = {1024, 2752, 4, 16, 32000, 512, 4};
    for (int i = 1; i < argc && i <= 7; i++)
        if (qh_parse_long(argv[i], &a[i - 1]) != 0 || a[i - 1] <= 0) {
            fprintf(stderr, "usage: %s [dim hidden layers heads vocab seqlen windows]\n", argv[0]);
            return 2;
        }
    ModelConfig c = {.dim = (int)a[0], .hidden_dim = (int)a[1], .n_layers = (int)a[2], .n_heads = (int)a[3],
                     .n_kv_heads = (int)a[3], .vocab_size = (int)a[4], .seq_len = (int)a[5], .shared_classifier = 1};
    int T = (int)a[5], W = (int)a[6];
    Model m;
    if (model_synth(&m, &c, 1) != 0) return 1;
    Forward *f;
    if (forward_cpu_create(&m, T, &f) != 0) return 1;
    int *tok = qh_malloc(sizeof(int) * (size_t)T);
    for (int t = 0; t < T; t++) tok[t] = (int)((t * 7919u) % (unsigned)c.vocab_size);
    double *nll = qh_malloc(sizeof(double) * (size_t)T);
    f->ops->window_nll(f, tok, T, nll); /* warm-up */
    double best = 1e30;
    for (int w = 0; w < W; w++) {
        double t0 = qh_now();
        f->ops->window_nll(f, tok, T, nll);
        double dt = qh_now() - t0;
        if (dt < best) best = dt;
    }
    double flops = forward_flops(&c, T);
    double gf = flops / best / 1e9;
    /* baseline: the best sgemm rate over the model's own GEMM shapes (T x out x in) */
    const int shapes[4][2] = {{c.dim, c.dim}, {c.hidden_dim, c.dim}, {c.dim, c.hidden_dim}, {c.vocab_size, c.dim}};
    double sg = 0.0;
    int best_shape = 0;
    for (int i = 0; i < 4; i++) {
        double r = bench_sgemm_gflops(T, shapes[i][0], shapes[i][1], 3);
        if (r > sg) sg = r, best_shape = i;
    }
    printf("forward (CPU): dim %d hidden %d layers %d heads %d vocab %d seqlen %d\n", c.dim, c.hidden_dim, c.n_layers,
           c.n_heads, c.vocab_size, T);
    printf("  window time         %10.4f s (best of %d)\n", best, W);
    printf("  tokens/s            %10.1f\n", T / best);
    printf("  forward GFLOP/s     %10.2f  (%.3g GFLOP per window)\n", gf, flops / 1e9);
    printf("  sgemm GFLOP/s       %10.2f  (best of the model's GEMM shapes: %d x %d x %d, same run)\n", sg, T,
           shapes[best_shape][0], shapes[best_shape][1]);
    printf("  forward / sgemm     %10.2f  (target >= 0.60)\n", gf / sg);
    forward_destroy(&f);
    model_free(&m);
    free(tok);
    free(nll);
    return 0;
}
