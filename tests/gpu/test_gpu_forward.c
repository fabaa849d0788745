/* test_gpu_forward.c: the CUDA backend (kernels/forward_cuda.cu) against the
 * CPU backend (forward_cpu_create) through forward.h only: window NLL and
 * perplexity over several windows (within 1e-4 relative in fp32 mode, loosely
 * in tf32 mode), embed, block with the linear-input hook (same calls, same
 * order, same inputs), head_nll, last_logits, weights_changed after a layer is
 * replaced, and the error paths (window too long, bad token, bad layer, bad
 * QH_CUDA_MATH). The fp16 / bf16 modes (16-bit weights and GEMM inputs) go
 * through the same comparisons with bounds derived from the type's rounding
 * error, and must differ from each other and from fp32 the way 16-bit
 * rounding does (bf16 several times further off than fp16). On synthetic
 * models of odd sizes (model_synth; one with Qwen2's q/k/v biases; one with
 * a window of 1100 tokens for the row-blocked attention) and on
 * stories260K ($QH_DATA/models/stories260K/stories260K.bin, QH_DATA defaults
 * to "data"; skipped when missing). Without a GPU (or in a build without nvcc)
 * everything is reported skipped and the exit status is 0. Not here: the
 * kernels one by one (test_gpu_kernels.c), the other families
 * (test_gpu_families.c). The comparisons themselves: gpu_compare.h. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "model.h"

#ifdef QH_HAVE_CUDA
#include "gpu_compare.h"

static void check_errors(Forward *gpu) {
    int T = gpu->max_T + 1, V = gpu->model->cfg.vocab_size;
    int *tok = calloc((size_t)T, sizeof(int));
    double *nll = malloc(sizeof(double) * T);
    float *x = calloc((size_t)T * gpu->model->cfg.dim, sizeof(float));
    fprintf(stderr, "(the errors below are expected)\n");
    CHECK(gpu->ops->window_nll(gpu, tok, T, nll) == -1, "a window longer than max_T is refused");
    CHECK(gpu->ops->window_nll(gpu, tok, 1, nll) == -1, "a window of one token has no nll");
    tok[3] = V;
    CHECK(gpu->ops->window_nll(gpu, tok, 8, nll) == -1, "token id V is refused");
    tok[3] = -1;
    CHECK(gpu->ops->embed(gpu, tok, 8, x) == -1, "token id -1 is refused");
    tok[3] = 0;
    CHECK(gpu->ops->block(gpu, gpu->model->cfg.n_layers, x, 8, NULL, NULL) == -1, "layer L is refused");
    CHECK(gpu->ops->weights_changed(gpu, -1) == -1, "weights_changed(-1) is refused");
    CHECK(gpu->ops->window_nll(gpu, tok, 8, nll) == 0, "the backend still works after refusals");
    free(tok), free(nll), free(x);
}

/* ---- the models ------------------------------------------------------------------ */

static void test_synth(const char *what, int H, int Hkv, int shared, int qkv_bias) {
    ModelConfig c = {.dim = 72, .hidden_dim = 173, .n_layers = 2, .n_heads = H, .n_kv_heads = Hkv,
                     .vocab_size = 517, .seq_len = 64, .shared_classifier = shared, .qkv_bias = qkv_bias};
    Model m;
    if (model_synth(&m, &c, 1234 + (uint64_t)Hkv) != 0) {
        CHECK(0, "%s: model_synth", what);
        return;
    }
    printf("%s: dim %d hidden %d layers %d heads %d kv heads %d vocab %d%s%s\n", what, c.dim, c.hidden_dim,
           c.n_layers, H, Hkv, c.vocab_size, shared ? " shared classifier" : "", qkv_bias ? " q/k/v biases" : "");
    /* layer 1 up and layer 0 k replaced (fp32), then layer 1 down (bf16); the checks: compare_all_modes */
    CompareSpec cs = {.T = 37, .max_T = 64, .changed_layer = {1, 0, 1}, .changed_kind = {LIN_UP, LIN_K, LIN_DOWN},
                      .bias_matters = qkv_bias, .check_16bit = 1, .fp32_extra = check_errors};
    compare_all_modes(what, &m, &cs);
    Forward *gpu = NULL;
    setenv("QH_CUDA_MATH", "fp8", 1);
    fprintf(stderr, "(the error below is expected)\n");
    CHECK(forward_cuda_create(&m, 64, &gpu) == -1 && gpu == NULL, "QH_CUDA_MATH=fp8 is refused");
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cuda_create(&m, 1, &gpu) == -1, "max_T 1 is refused");
    model_free(&m);
}

/* A window long enough for the backend's row-blocked attention (T >= 1024:
 * ATTENTION_ROW_BLOCKS blocks of query rows against up to 1100 keys, the
 * softmax's 128-thread paths up to 16 columns a thread), whole model against
 * the CPU. */
static void test_long_window(void) {
    ModelConfig c = {.dim = 48, .hidden_dim = 97, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 301, .seq_len = 1100, .shared_classifier = 0};
    Model m;
    if (model_synth(&m, &c, 77) != 0) {
        CHECK(0, "long window: model_synth");
        return;
    }
    Forward *cpu = NULL, *gpu = NULL;
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cpu_create(&m, c.seq_len, &cpu) == 0 && forward_cuda_create(&m, c.seq_len, &gpu) == 0,
          "long window: backends");
    if (cpu && gpu) compare_windows("long window T=1100", cpu, gpu, 1, 1100, 31, 1e-4, 1e-4, NULL);
    forward_destroy(&gpu);
    forward_destroy(&cpu);
    model_free(&m);
}

static void test_stories260k(void) {
    const char *root = getenv("QH_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", root && *root ? root : "data");
    if (access(path, R_OK) != 0) {
        SKIP("stories260K.bin not found (set QH_DATA): real-model comparison not run");
        return;
    }
    Model m;
    if (model_load_llama2c(&m, path) != 0) {
        CHECK(0, "loading %s", path);
        return;
    }
    Forward *cpu = NULL, *gpu = NULL;
    unsetenv("QH_CUDA_MATH");
    int T = 256;
    CHECK(forward_cpu_create(&m, T, &cpu) == 0, "cpu backend");
    CHECK(forward_cuda_create(&m, T, &gpu) == 0, "cuda backend");
    if (cpu && gpu) {
        compare_windows("stories260K", cpu, gpu, 4, T, 101, 1e-4, 1e-4, NULL);
        compare_windows("stories260K", cpu, gpu, 2, 131, 105, 1e-4, 1e-4, NULL);
        compare_pieces("stories260K", cpu, gpu, 67, 107, &fp32_tol);
    }
    forward_destroy(&gpu);
    forward_destroy(&cpu);
    model_free(&m);
}
#endif /* QH_HAVE_CUDA */

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible (or a build without nvcc): CUDA backend tests not run");
        return test_summary();
    }
#ifdef QH_HAVE_CUDA
    test_synth("synth GQA 6/2", 6, 2, 0, 0);
    test_synth("synth GQA 6/3 shared", 6, 3, 1, 0);
    test_synth("synth MHA 6/6", 6, 6, 0, 0);
    test_synth("synth GQA 6/2 q/k/v biases", 6, 2, 0, 1);
    test_long_window();
    test_stories260k();
#endif
    return test_summary();
}
