/* quant_io.c: quantized-model files (see quant_io.h). */
#include "quant_io.h"

#include "util.h"

int quant_model_load(const char *path, const char *model_path, const char *tok_path, Model *m, Tokenizer *t,
                     QuantModelInfo *info) {
    return qh_error("--quantized: not implemented yet");
}
