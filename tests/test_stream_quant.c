/* test_stream_quant.c: quantization and evaluation under a memory budget
 * (calibrate.h block_done, quant_io block files, stream_eval.h loader), for
 * two kinds of checkpoint, each in a child process of its own (peak resident
 * memory is per process):
 *  - a 194 MB llama2.c file (mmapped);
 *  - a Qwen2 Hugging Face directory (q/k/v biases) in three bf16 shards,
 *    97 MB on disk, 194 MB as fp32, opened streamed (hf_model_open_streamed:
 *    each block's linears converted from the shards when needed).
 *  - a procedural model (procedural.h), 48 narrower blocks (dim 256), 152 MB
 *    as fp32, its block linears generated when model_load_block asks, under a
 *    48 MB budget: three times the budget.
 * For each: the original model is evaluated block by block (bit-identical to
 * the ordinary evaluation), then GPTQ-quantized block by block into a file and
 * evaluated block by block from that file, while the process's resident memory
 * grows by less than the budget (128 MB; 48 MB for the procedural model; the
 * in-memory run grows by more than the model); the file equals the one an ordinary run writes (same codes, same
 * bits) and gives the same perplexity. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "calibrate.h"
#include "capture.h"
#include "check.h"
#include "hf_model.h"
#include "perplexity.h"
#include "procedural.h"
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

enum { CASE_LLAMA2C = 0, CASE_HF, CASE_PROCEDURAL, N_CASES };
static const char *const case_names[N_CASES] = {"llama2.c", "HF Qwen2 bf16 shards", "procedural"};
#define PROC_SPEC "procedural:custom,dim=256,hidden=688,layers=48,heads=4,vocab=512,seq_len=128,shared=1,seed=7"

/* Open the checkpoint: for block-by-block work (streamed) or in memory. */
static int open_model(Model *m, const char *path, int hf, int streamed) {
    if (hf == CASE_PROCEDURAL) return procedural_open(m, path, streamed);
    if (!hf) return model_load_llama2c(m, path);
    return streamed ? hf_model_open_streamed(m, path) : hf_model_load(m, path);
}

/* One kind of checkpoint, start to end (in a child process). */
static void run_case(const char *root, int hf) {
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", root);
    Tokenizer t;
    if (tokenizer_load(&t, tp, 512) != 0) {
        CHECK(0, "tokenizer %s", tp);
        return;
    }
    char dir[] = "/tmp/qh_test_squant_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], qpath[256], qpath2[256];
    snprintf(path, sizeof path, hf == CASE_PROCEDURAL ? PROC_SPEC : hf ? "%s/big_hf" : "%s/big.bin", dir);
    snprintf(qpath, sizeof qpath, "%s/q_stream.h5", dir);
    snprintf(qpath2, sizeof qpath2, "%s/q_full.h5", dir);
    ModelConfig c = {.dim = 512, .hidden_dim = 1376, .n_layers = 16, .n_heads = 8, .n_kv_heads = 8,
                     .vocab_size = 512, .seq_len = 128, .shared_classifier = 1, .qkv_bias = hf == CASE_HF};
    uint64_t pseed;
    if (hf == CASE_PROCEDURAL) CHECK(procedural_parse(PROC_SPEC, &c, &pseed) == 0, "parse %s", PROC_SPEC);
    pid_t pid = hf == CASE_PROCEDURAL ? -1 : fork(); /* written by a child: this process's peak RSS never holds the whole model */
    if (pid == 0) {
        Model s;
        HfSaveOptions o = {.dtype = ST_BF16, .max_shard_bytes = 40u << 20};
        _exit(model_synth(&s, &c, 5) == 0 && (hf ? hf_model_save(&s, path, &o) : model_save_llama2c(&s, path)) == 0
                  ? 0 : 1);
    }
    int status = 0;
    if (pid > 0) {
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "synthetic checkpoint written");
    }
    size_t model_bytes = sizeof(float) * (size_t)(model_linear_params(&c) + (int64_t)c.vocab_size * c.dim);

    Model m;
    CHECK(open_model(&m, path, hf, 1) == 0, "open %s", path);
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
    size_t budget = (hf == CASE_PROCEDURAL ? 48 : 128) * (size_t)MB, base = qh_peak_rss_bytes();
    const char *kind = case_names[hf];
    printf("%s: baseline %.1f MB (current %.1f MB)\n", kind, (double)base / MB, (double)qh_current_rss_bytes() / MB);

    /* the original weights, block by block: the ordinary evaluation's NLLs exactly */
    PplResult r0, r1;
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, budget, NULL, &r0) == 0, "streamed eval (original)");
    printf("%s: original model block by block: ppl %.10f, added %.1f MB\n", kind, r0.ppl,
           (double)(qh_peak_rss_bytes() - base) / MB);

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
    StreamLoader loader = {.load = load_block, .user = qf};
    PplResult rs;
    CHECK(perplexity_eval_streamed(&m, ids, (size_t)T * NWIN, T, 0, budget, &loader, &rs) == 0, "streamed eval");
    h5_commit(&qf);
    size_t grown = qh_peak_rss_bytes() - base;
    printf("%s: block by block: quantization added %.1f MB, with evaluation %.1f MB, for a %.1f MB model (fp32), "
           "budget %.1f MB; ppl %.10f\n", kind, (double)grown_q / MB, (double)grown / MB, (double)model_bytes / MB,
           (double)budget / MB, rs.ppl);
    CHECK(grown <= budget, "resident memory grew by %.1f MB, budget %.1f MB", (double)grown / MB, (double)budget / MB);

    /* the ordinary path: the same file and the same perplexity */
    Model m2;
    CHECK(open_model(&m2, path, hf, 0) == 0, "load again (in memory)");
    Forward *f;
    CHECK(forward_cpu_create(&m2, T, &f) == 0 && perplexity_eval(f, ids, (size_t)T * NWIN, T, 0, &r1) == 0, "eval");
    forward_destroy(&f);
    CHECK(r0.ppl == r1.ppl && !memcmp(r0.nll, r1.nll, sizeof(double) * NWIN * (T - 1)),
          "original model: block by block ppl %.17g vs in memory %.17g (or per-token NLLs differ)", r0.ppl, r1.ppl);
    ppl_result_free(&r0);
    ppl_result_free(&r1);
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
    /* rows stored as the checkpoint orders them: rotate-half wq / wk for HF */
    H5File *rf;
    if (h5_open_read(qpath2, &rf) == 0) {
        const char *want[LIN_COUNT];
        for (int k = 0; k < LIN_COUNT; k++) want[k] = hf == CASE_HF && (k == LIN_Q || k == LIN_K) ? "rotate_half" : "interleaved";
        for (int k = 0; k < LIN_COUNT; k++) {
            char *v = NULL, g[64];
            snprintf(g, sizeof g, "/layers/3/%s", linear_names[k]);
            CHECK(h5_get_attr_str(rf, g, "row_order", &v) == 0 && !strcmp(v, want[k]), "%s: %s row_order '%s', want '%s'",
                  kind, g, v ? v : "(none)", want[k]);
            free(v);
        }
        h5_commit(&rf);
    }
    /* a row order a layer cannot have is refused by name */
    if (h5_open_rw(qpath2, &rf) == 0) {
        CHECK(h5_attr_str(rf, "/layers/0/wv", "row_order", "rotate_half") == 0, "edit row_order");
        h5_commit(&rf);
    }
    if (h5_open_read(qpath2, &rf) == 0) {
        Model m3;
        int rc = open_model(&m3, path, hf, 0);
        CHECK(rc == 0, "load a third time");
        if (rc == 0) {
            cap_begin_in(dir);
            int lrc = quant_io_load_block(rf, &m3, 0);
            char *err = cap_end();
            CHECK(lrc != 0 && strstr(err, "/layers/0/wv has row_order 'rotate_half'"),
                  "wv stored rotate-half is refused: %s", err);
            free(err);
            model_free(&m3);
        }
        h5_commit(&rf);
    }
    size_t grown_full = qh_peak_rss_bytes() - base;
    printf("%s: in memory: added %.1f MB\n", kind, (double)grown_full / MB);
    CHECK(grown_full > model_bytes, "the in-memory run added only %.1f MB (the comparison is void)",
          (double)grown_full / MB);
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
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "removing %s", dir);
}

int main(void) {
    const char *root = getenv("QH_DATA") ? getenv("QH_DATA") : "data";
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", root);
    if (access(tp, R_OK) != 0) {
        SKIP("tok512.bin not found (make data)");
        return test_summary();
    }
    for (int hf = 0; hf < N_CASES; hf++) {
        int fds[2];
        CHECK(pipe(fds) == 0, "pipe");
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) { /* a fresh process: its own peak resident memory */
            close(fds[0]);
            run_case(root, hf);
            fflush(stdout);
            int counts[3] = {check_passed, check_failed, check_skipped};
            _exit(write(fds[1], counts, sizeof counts) == (ssize_t)sizeof counts ? 0 : 1);
        }
        close(fds[1]);
        int counts[3] = {0, 0, 0}, status = 0;
        int got = read(fds[0], counts, sizeof counts) == (ssize_t)sizeof counts;
        close(fds[0]);
        waitpid(pid, &status, 0);
        CHECK(got && WIFEXITED(status) && WEXITSTATUS(status) == 0, "case %s ended normally", case_names[hf]);
        check_passed += counts[0];
        check_failed += counts[1];
        check_skipped += counts[2];
    }
    return test_summary();
}
