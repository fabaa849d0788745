/* test_stream_quant.c: quantization and evaluation under a memory budget
 * (calibrate.h block_done, quant_io block files, stream_eval.h loader): a
 * 194 MB synthetic checkpoint is GPTQ-quantized block by block into a file and
 * evaluated block by block from that file, while the process's resident memory
 * grows by less than the 128 MB budget (the in-memory run grows by more than
 * the model); the file equals the one an ordinary
 * run writes (same codes, same bits) and gives the same perplexity. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "calibrate.h"
#include "check.h"
#include "perplexity.h"
#include "provenance.h"
#include "quant_io.h"
#include "stream_eval.h"
#include "util.h"

#define MB (1u << 20)

typedef struct {
    H5File *f;
    int64_t bytes;
} Writer;
static int write_block(void *user, const struct QuantRun *run, int l) {
    Writer *w = user;
    return quant_io_write_block(w->f, "/", run, l, &w->bytes);
}
static int load_block(void *user, Model *m, int l) { return quant_io_load_block((H5File *)user, m, l); }

int main(void) {
    const char *root = getenv("QH_DATA") ? getenv("QH_DATA") : "data";
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", root);
    Tokenizer t;
    if (access(tp, R_OK) != 0 || tokenizer_load(&t, tp, 512) != 0) {
        SKIP("tok512.bin not found (make data)");
        return test_summary();
    }
    char dir[] = "/tmp/qh_test_squant_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], qpath[256], qpath2[256];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    snprintf(qpath, sizeof qpath, "%s/q_stream.h5", dir);
    snprintf(qpath2, sizeof qpath2, "%s/q_full.h5", dir);
    ModelConfig c = {.dim = 512, .hidden_dim = 1376, .n_layers = 16, .n_heads = 8, .n_kv_heads = 8,
                     .vocab_size = 512, .seq_len = 128, .shared_classifier = 1};
    pid_t pid = fork(); /* written by a child: this process's peak RSS never holds the whole model */
    if (pid == 0) {
        Model s;
        _exit(model_synth(&s, &c, 5) == 0 && model_save_llama2c(&s, path) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "synthetic checkpoint written");

    Model m;
    CHECK(model_load_llama2c(&m, path) == 0, "load");
    enum { T = 128, NWIN = 4 };
    int *ids = qh_malloc(sizeof(int) * T * NWIN);
    for (int i = 0; i < T * NWIN; i++) ids[i] = (int)((i * 40503u + 7) % 512u);
    QuantRunSpec s = {.method = "gptq", .calib = "c4", .nsamples = 4, .seqlen = 64, .seed = 0, .data_root = root,
                      .device = QH_DEVICE_CPU};
    quant_params_default(&s.params, "gptq");
    Provenance prov;
    char *argv0[] = {"test_stream_quant"};
    provenance_collect(&prov, 1, argv0);
    /* the baseline includes what the libraries keep for themselves once used:
     * OpenBLAS's per-thread GEMM pools (allocated at the first BLAS call) */
    {
        float *A = qh_calloc(512 * 1376, sizeof(float)), *B = qh_calloc(512 * 1376, sizeof(float)),
              *C = qh_calloc(1376 * 1376, sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 1376, 1376, 512, 1.0f, A, 1376, B, 1376, 0.0f, C, 1376);
        free(A);
        free(B);
        free(C);
    }
    size_t budget = 128 * (size_t)MB, base = qh_peak_rss_bytes();
    printf("baseline %.1f MB (current %.1f MB)\n", (double)base / MB, (double)qh_current_rss_bytes() / MB);

    Writer w = {0};
    CHECK(quant_model_file_begin(qpath, &m, &s, &prov, "{}", &w.f) == 0, "begin %s", qpath);
    s.block_done = write_block;
    s.block_user = &w;
    QuantRun run;
    CHECK(quantize_model(&m, &t, &s, &run) == 0, "quantize block by block");
    printf("after quantization: peak %.1f MB\n", (double)qh_peak_rss_bytes() / MB);
    CHECK(quant_model_file_end(&w.f, &run, w.bytes) == 0, "file committed");
    size_t grown_q = qh_peak_rss_bytes() - base;
    CHECK(!model_has_replaced(&m), "no quantized block left in memory");

    H5File *qf;
    CHECK(h5_open_read(qpath, &qf) == 0, "reopen");
    StreamLoader loader = {load_block, qf};
    PplResult rs;
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, budget, &loader, &rs) == 0, "streamed eval");
    h5_commit(&qf);
    size_t grown = qh_peak_rss_bytes() - base;
    printf("block by block: quantization added %.1f MB, with evaluation %.1f MB, for a %.1f MB model, budget %.1f MB; "
           "ppl %.10f\n", (double)grown_q / MB, (double)grown / MB, (double)m.map_size / MB, (double)budget / MB, rs.ppl);
    CHECK(grown <= budget, "resident memory grew by %.1f MB, budget %.1f MB", (double)grown / MB, (double)budget / MB);

    /* the ordinary path: the same file and the same perplexity */
    Model m2;
    CHECK(model_load_llama2c(&m2, path) == 0, "load again");
    s.block_done = NULL;
    QuantRun run2;
    CHECK(quantize_model(&m2, &t, &s, &run2) == 0, "quantize in memory");
    CHECK(quant_model_save(qpath2, &m2, &s, &run2, &prov, "{}") == 0, "save");
    CHECK(run.avg_bits == run2.avg_bits && run.total_proxy_loss == run2.total_proxy_loss,
          "bits %g / %g, proxy loss %g / %g", run.avg_bits, run2.avg_bits, run.total_proxy_loss, run2.total_proxy_loss);
    H5File *a, *b;
    int same = h5_open_read(qpath, &a) == 0 && h5_open_read(qpath2, &b) == 0;
    for (int l = 0; same && l < c.n_layers; l++)
        for (int k = 0; same && k < LIN_COUNT; k++) {
            QuantLayer x, y;
            same = quant_io_read_layer(a, "/", l, (LinearKind)k, &x) == 0 &&
                   quant_io_read_layer(b, "/", l, (LinearKind)k, &y) == 0 &&
                   !memcmp(x.codes, y.codes, (size_t)x.m * x.n);
            quant_layer_free(&x);
            quant_layer_free(&y);
        }
    h5_commit(&a);
    h5_commit(&b);
    CHECK(same, "the block-by-block file's codes differ from the in-memory run's");
    size_t grown_full = qh_peak_rss_bytes() - base;
    printf("in memory: added %.1f MB\n", (double)grown_full / MB);
    CHECK(grown_full > m2.map_size, "the in-memory run added only %.1f MB (the comparison is void)",
          (double)grown_full / MB);
    Forward *f;
    PplResult rn;
    CHECK(forward_cpu_create(&m2, T, &f) == 0 && perplexity_eval(f, ids, (size_t)T * NWIN, T, 0, &rn) == 0, "eval");
    CHECK(rn.ppl == rs.ppl, "in-memory ppl %.17g vs block by block %.17g", rn.ppl, rs.ppl);
    forward_destroy(&f);
    ppl_result_free(&rn);
    ppl_result_free(&rs);
    quant_run_free(&run);
    quant_run_free(&run2);
    model_free(&m2);
    model_free(&m);
    tokenizer_free(&t);
    free(ids);
    unlink(qpath);
    unlink(qpath2);
    unlink(path);
    rmdir(dir);
    return test_summary();
}
