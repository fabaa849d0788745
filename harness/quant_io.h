/* quant_io.h: the quantized-model file: every quantized linear layer of a
 * model in its compressed form (quant/quant.h QuantLayer) in HDF5, with the
 * settings that made it; and loading it back as a Model whose linear layers
 * are the decoded weights. Schema in results/README.md. */
#ifndef QH_QUANT_IO_H
#define QH_QUANT_IO_H

#include "model.h"
#include "tokenizer.h"

typedef struct QuantModelInfo {
    char method[16];
    double avg_bits;      /* SPEC 6 formula over the whole model */
    double stored_bits;   /* bits per parameter actually stored */
    double outlier_fraction;
} QuantModelInfo;

/* Load the base model named in the file (or model_path when given), then
 * replace its linear layers by the decoded quantized weights. */
int quant_model_load(const char *path, const char *model_path, const char *tok_path, Model *m, Tokenizer *t,
                     QuantModelInfo *info);

#endif
