/* model_open.c: open a model by path, whatever its format, with its tokenizer
 * (see model_open.h). Not here: the formats themselves (model.c, hf_model.c),
 * which tokenizer file goes with a model (tokenizer_find.c). */
#include <stdio.h>
#include <sys/stat.h>

#include "hf_model.h"
#include "model_open.h"
#include "procedural.h"
#include "util.h"

int model_open(const char *model_path, const char *tok_path, Model *m, Tokenizer *t) {
    return model_open_for(model_path, tok_path, m, t, 0);
}

int model_open_for(const char *model_path, const char *tok_path, Model *m, Tokenizer *t, int block_by_block) {
    if (!model_path) return qh_error("--model is required");
    if (procedural_is_spec(model_path)) { /* generated, not read: no file, no tokenizer beside it */
        if (t && !tok_path)
            return qh_error("model '%s' is procedural and has no tokenizer beside it: pass --tokenizer", model_path);
        if (procedural_open(m, model_path, block_by_block) != 0) return -1;
        if (t && tokenizer_load(t, tok_path, m->cfg.vocab_size) != 0) {
            model_free(m);
            return -1;
        }
        return 0;
    }
    struct stat st;
    int is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir && !hf_is_model_dir(model_path))
        return qh_error("model '%s' is a directory without a config.json (not a Hugging Face model)", model_path);
    int rc = !is_dir ? model_load_llama2c(m, model_path)
             : block_by_block ? hf_model_open_streamed(m, model_path) : hf_model_load(m, model_path);
    if (rc != 0) return -1;
    if (!t) return 0;
    char buf[4096];
    if (!tok_path) {
        if (tokenizer_find(model_path, m->cfg.vocab_size, buf, sizeof buf) != 0) {
            char tried[160];
            tokenizer_find_tried(model_path, m->cfg.vocab_size, tried, sizeof tried);
            model_free(m);
            return qh_error("no tokenizer found %s '%s' (tried %s): pass --tokenizer", is_dir ? "in" : "beside",
                            model_path, tried);
        }
        tok_path = buf;
    }
    if (tokenizer_load(t, tok_path, m->cfg.vocab_size) != 0) {
        model_free(m);
        return -1;
    }
    return 0;
}
