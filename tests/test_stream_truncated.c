/* test_stream_truncated.c: a Hugging Face checkpoint (bf16 shards) cut in
 * the middle of a later block while block-by-block work is under way:
 *  - evaluation: the shard holding the last block's down_proj is truncated
 *    after the directory was opened; perplexity_eval_streamed fails when that
 *    block is read, the message naming the tensor and the file (not a SIGBUS
 *    on the mmapped pages past the new end);
 *  - quantization with block_done (quantize --max-memory): block 0 is written
 *    to the --save file, then the shard is cut; the run fails at the last
 *    block naming the tensor and the file, and the file, aborted as
 *    cmd_quantize does, is left neither under its name nor as a temporary;
 *  - the same checkpoint opened after the cut is refused at once, naming the
 *    tensor and the file, before any work. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "capture.h"
#include "check.h"
#include "hf_model.h"
#include "provenance.h"
#include "quant_io.h"
#include "stream_eval.h"

static char dir[] = "/tmp/qh_test_trunc_XXXXXX";
static char hf[300], shard[400];

/* The shard of the index holding `tensor` (DIR/name), found in the index JSON text. */
static int shard_of(const char *tensor, char *out, size_t n) {
    char ip[400], *text;
    size_t len;
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", hf);
    if (qh_read_file(ip, &text, &len) != 0) return -1;
    char key[200];
    snprintf(key, sizeof key, "\"%s\"", tensor);
    char *k = strstr(text, key), *q1 = k ? strchr(k + strlen(key), '"') : NULL, *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
    if (q2) snprintf(out, n, "%s/%.*s", hf, (int)(q2 - q1 - 1), q1 + 1);
    free(text);
    return q2 ? 0 : -1;
}

static void cut(void) {
    FILE *f = fopen(shard, "rb");
    long size = 0;
    if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (f) fclose(f);
    CHECK(size > 100 && truncate(shard, size / 2) == 0, "truncate %s from %ld bytes to half", shard, size);
}

static int cut_after_block0(void *user, const struct QuantRun *run, int l) {
    int64_t bytes = 0;
    int rc = quant_io_write_block((H5File *)user, "/", run, l, &bytes);
    if (l == 0) cut();
    return rc;
}

/* Does dir hold an entry starting with `prefix`? */
static int dir_has(const char *d, const char *prefix) {
    DIR *dp = opendir(d);
    struct dirent *e;
    int found = 0;
    while (dp && (e = readdir(dp)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) found = 1;
    if (dp) closedir(dp);
    return found;
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    snprintf(hf, sizeof hf, "%s/hf", dir);
    ModelConfig c = {.dim = 64, .hidden_dim = 172, .n_layers = 4, .n_heads = 4, .n_kv_heads = 4, .vocab_size = 256,
                     .seq_len = 64, .shared_classifier = 1};
    Model s;
    HfSaveOptions o = {.dtype = ST_BF16, .max_shard_bytes = 40000}; /* a shard or two per block */
    CHECK(model_synth(&s, &c, 3) == 0 && hf_model_save(&s, hf, &o) == 0, "bf16 shards written to %s", hf);
    model_free(&s);
    const char *last = "model.layers.3.mlp.down_proj.weight";
    CHECK(shard_of(last, shard, sizeof shard) == 0, "the shard of %s: %s", last, shard);
    char copy[900];
    snprintf(copy, sizeof copy, "cp '%s' '%s.orig'", shard, shard);
    CHECK(system(copy) == 0, "keep a copy of the shard");

    int ids[64 * 3];
    for (int i = 0; i < 64 * 3; i++) ids[i] = (i * 37 + 11) % 256;

    /* evaluation: cut after opening, found at block 3 */
    Model m;
    CHECK(hf_model_open_streamed(&m, hf) == 0, "open streamed");
    PplResult r;
    CHECK(perplexity_eval_streamed(&m, ids, 64 * 3, 64, 0, 64u << 20, NULL, &r) == 0, "intact: evaluated");
    ppl_result_free(&r);
    cut();
    cap_begin_in(dir);
    int rc = perplexity_eval_streamed(&m, ids, 64 * 3, 64, 0, 64u << 20, NULL, &r);
    char *err = cap_end();
    CHECK(rc != 0 && strstr(err, last) && strstr(err, shard) && strstr(err, "block 3") && strstr(err, "truncated"),
          "cut shard found at block 3, naming tensor and file: %s", err);
    free(err);
    model_free(&m);

    /* opened after the cut: refused at once */
    cap_begin_in(dir);
    rc = hf_model_open_streamed(&m, hf);
    err = cap_end();
    CHECK(rc != 0 && strstr(err, last) && strstr(err, shard), "opening the cut checkpoint refused: %s", err);
    free(err);

    /* quantization: block 0 saved, then the cut; the --save file does not survive */
    snprintf(copy, sizeof copy, "cp '%s.orig' '%s'", shard, shard);
    CHECK(system(copy) == 0, "shard restored");
    CHECK(hf_model_open_streamed(&m, hf) == 0, "open streamed again");
    char save[400];
    snprintf(save, sizeof save, "%s/q.h5", dir);
    QuantRunSpec spec = {.method = "rtn", .calib = "none", .nsamples = 1, .seqlen = 64, .device = QH_DEVICE_CPU};
    quant_params_default(&spec.params, "rtn");
    Provenance prov;
    char *argv0[] = {"test_stream_truncated"};
    provenance_collect(&prov, 1, argv0);
    H5File *f = NULL;
    CHECK(quant_model_file_begin(save, &m, &spec, &prov, "{}", &f) == 0, "begin %s", save);
    spec.block_done = cut_after_block0;
    spec.block_user = f;
    QuantRun run;
    cap_begin_in(dir);
    rc = quantize_model(&m, NULL, &spec, &run);
    err = cap_end();
    CHECK(rc != 0 && strstr(err, last) && strstr(err, shard), "quantization stopped at the cut block: %s", err);
    free(err);
    if (rc != 0) h5_abort(&f); /* what cmd_quantize does on failure */
    else quant_run_free(&run);
    CHECK(access(save, F_OK) != 0 && !dir_has(dir, "q.h5"), "no q.h5 (nor a temporary of it) left in %s", dir);
    model_free(&m);

    snprintf(copy, sizeof copy, "rm -rf '%s'", dir);
    CHECK(system(copy) == 0, "clean up");
    return test_summary();
}
