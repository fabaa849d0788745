/* test_stream_eval.c: block-by-block evaluation under --max-memory
 * (stream_eval.h): on a 16-block synthetic checkpoint of ~200 MB, the
 * streamed perplexity equals the ordinary one bit for bit while the process's
 * resident memory grows by less than the 48 MB budget (the ordinary evaluation
 * grows by the whole model), the windows kept as many at a time as the budget
 * holds (2 per pass: the same NLLs); budgets below one block are refused; a model
 * whose weights are not the mmapped file's is refused; a Hugging Face
 * directory opened streamed holds its converted tensors once, not also their
 * file pages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "hf_model.h"
#include "model.h"
#include "perplexity.h"
#include "stream_eval.h"
#include "util.h"

#define MB (1u << 20)

int main(void) {
    char dir[] = "/tmp/qh_test_stream_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return test_summary();
    }
    char path[256];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    ModelConfig c = {.dim = 512, .hidden_dim = 1376, .n_layers = 16, .n_heads = 8, .n_kv_heads = 8,
                     .vocab_size = 512, .seq_len = 128, .shared_classifier = 1};
    /* the checkpoint is written by a child so that this process's peak RSS never held it */
    pid_t pid = fork();
    if (pid == 0) {
        Model s;
        int ok = model_synth(&s, &c, 7) == 0 && model_save_llama2c(&s, path) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writing the synthetic checkpoint");

    Model m;
    CHECK(model_load_llama2c(&m, path) == 0, "load %s", path);
    size_t model_bytes = m.map_size;
    CHECK(model_bytes > 190 * (size_t)MB, "checkpoint is %zu MB", model_bytes / MB);
    enum { T = 128, NWIN = 6 };
    int *ids = qh_malloc(sizeof(int) * T * NWIN);
    for (int i = 0; i < T * NWIN; i++) ids[i] = (int)((i * 2654435761u) % 512u);

    size_t budget = 48 * (size_t)MB;
    size_t base = qh_current_rss_bytes();
    PplResult rs, rn;
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, budget, NULL, &rs) == 0, "streamed evaluation");
    size_t grown = qh_peak_rss_bytes() - base;
    printf("streamed: ppl %.10f, resident growth %.1f MB for a %.1f MB model, budget %.1f MB\n", rs.ppl,
           (double)grown / MB, (double)model_bytes / MB, (double)budget / MB);
    CHECK(base > 0, "/proc/self/statm readable");
    CHECK(grown <= budget, "resident memory grew by %.1f MB, budget %.1f MB", (double)grown / MB, (double)budget / MB);
    /* the CPU backend keeps the windows in host memory, as many at once as the budget holds besides the fixed part */
    long per_pass = (long)((budget - stream_eval_fixed_bytes(&c, T)) / (sizeof(float) * T * c.dim));
    CHECK(rs.acts_on_device == 0 && rs.windows_per_pass == (per_pass < NWIN ? per_pass : NWIN),
          "windows per pass %ld (expected %ld), on the device %d", rs.windows_per_pass,
          per_pass < NWIN ? per_pass : NWIN, rs.acts_on_device);
    PplResult r2;
    size_t two = stream_eval_fixed_bytes(&c, T) + 2 * sizeof(float) * T * c.dim; /* two windows per pass */
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, two, NULL, &r2) == 0 && r2.windows_per_pass == 2,
          "a budget of the fixed part and two windows: 2 windows per pass (%ld)", r2.windows_per_pass);
    CHECK(r2.ppl == rs.ppl && !memcmp(r2.nll, rs.nll, sizeof(double) * NWIN * (T - 1)),
          "in passes of 2 windows: the same NLLs bit for bit");
    ppl_result_free(&r2);

    Forward *f;
    CHECK(forward_cpu_create(&m, T, &f) == 0, "cpu backend");
    CHECK(perplexity_eval(f, ids, (size_t)T * NWIN, T, 0, &rn) == 0, "ordinary evaluation");
    size_t grown_full = qh_peak_rss_bytes() - base;
    printf("ordinary: ppl %.10f, resident growth %.1f MB\n", rn.ppl, (double)grown_full / MB);
    CHECK(rs.ppl == rn.ppl && rs.nwindows == rn.nwindows, "streamed ppl %.17g != ordinary %.17g", rs.ppl, rn.ppl);
    CHECK(!memcmp(rs.nll, rn.nll, sizeof(double) * NWIN * (T - 1)), "per-token NLLs differ");
    CHECK(grown_full > model_bytes * 3 / 4, "the ordinary evaluation grew by only %.1f MB (the comparison is void)",
          (double)grown_full / MB);
    forward_destroy(&f);
    ppl_result_free(&rn);
    ppl_result_free(&rs);

    /* one window of activations + one block do not fit in 4 MB */
    fprintf(stderr, "(the errors below are expected)\n");
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, 4 * (size_t)MB, NULL, &rs) == -1, "4 MB is refused");
    /* replaced weights are not in the file: refused */
    int o, i;
    model_linear_shape(&m.cfg, LIN_Q, &o, &i);
    float *W = qh_calloc((size_t)o * i, sizeof(float));
    model_set_linear(&m, 0, LIN_Q, W);
    free(W);
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, budget, NULL, &rs) == -1, "replaced weights refused");
    model_free(&m);
    free(ids);
    unlink(path);

    /* a Hugging Face directory opened streamed keeps the fp32 copies of the
     * embedding and head resident, not also their bf16 pages in the file */
    char hf[300], cmd[400];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    ModelConfig v = {.dim = 512, .hidden_dim = 64, .n_layers = 1, .n_heads = 8, .n_kv_heads = 8,
                     .vocab_size = 32768, .seq_len = 64, .shared_classifier = 0};
    if ((pid = fork()) == 0) {
        Model s;
        HfSaveOptions o = {.dtype = ST_BF16};
        _exit(model_synth(&s, &v, 3) == 0 && hf_model_save(&s, hf, &o) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writing the HF directory");
    size_t before = qh_current_rss_bytes(), fp32 = 2 * sizeof(float) * (size_t)v.vocab_size * v.dim;
    Model h;
    CHECK(hf_model_open_streamed(&h, hf) == 0, "open %s streamed", hf);
    size_t grew = qh_current_rss_bytes() - before;
    printf("HF streamed open: resident memory grew %.1f MB for %.1f MB of fp32 embedding and head (bf16 in the file)\n",
           (double)grew / MB, (double)fp32 / MB);
    CHECK(grew < fp32 + 16 * (size_t)MB, "grew %.1f MB: the file's pages of the converted tensors stay resident",
          (double)grew / MB);
    model_free(&h);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", hf);
    CHECK(system(cmd) == 0, "removing %s", hf);
    rmdir(dir);
    return test_summary();
}
