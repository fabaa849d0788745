/* quant_io.h: the quantized-model file: every quantized linear layer of a
 * model in its compressed form (quant/quant.h QuantLayer) in HDF5, with the
 * settings and provenance that made it; and loading it back as a Model whose
 * linear layers are the decoded weights. Schema in results/README.md. Not
 * here: how layers are quantized (calibrate.c) or evaluated (eval_run.c). */
#ifndef QH_QUANT_IO_H
#define QH_QUANT_IO_H

#include "calibrate.h"
#include "h5io.h"
#include "model.h"
#include "provenance.h"
#include "settings.h"
#include "stream_eval.h"
#include "tokenizer.h"

typedef struct QuantModelInfo {
    char method[16];
    double avg_bits;         /* SPEC 6 formula over the whole model */
    double stored_bits;      /* bits per parameter actually stored */
    double outlier_fraction;
    int64_t bytes_written;   /* bytes of the compressed tensors (the stored format) */
    QuantParams params;      /* the settings the file was made with (its /settings attributes) */
    int have_params;         /* 0 for a file written before /settings existed */
} QuantModelInfo;

/* Write the compressed layers of `run` under group `g` of f ("/" for a model
 * file); returns the bytes of compressed tensors written in *bytes. */
int quant_io_write(H5File *f, const char *g, const QuantRun *run, int64_t *bytes);
/* The same for block l only (the block's layers must still be in run). */
int quant_io_write_block(H5File *f, const char *g, const QuantRun *run, int l, int64_t *bytes);
/* Per-layer diagnostics of `run` as (L, 7) tables under <g>/quant, phase times as attributes. */
int quant_io_write_report(H5File *f, const char *g, const QuantRun *run);
/* A quantized model file written block by block: begin (header), then
 * quant_io_write_block per block, then end (summary, report, commit). */
int quant_model_file_begin(const char *path, const Model *m, const QuantRunSpec *spec, const Provenance *prov,
                           const char *settings_json, H5File **f);
int quant_model_file_end(H5File **f, const QuantRun *run, int64_t bytes);
/* The value of a layer's "row_order" attribute: "rotate_half" for the wq / wk
 * of a rotate-half checkpoint (stored in its own row order, as quantized),
 * "interleaved" otherwise (the harness's order). */
const char *quant_io_row_order_name(int rotate_half);
/* Write the group /settings: one attribute per row of quant_settings[]
 * (settings.h), int64 for integers, booleans and enum indices, float64 for
 * numbers; quantized-model files and sweep point files carry it. */
int quant_io_write_settings(H5File *f, const QuantParams *p);
/* The value of setting q that f was made with: its /settings attribute
 * (checked against the row), or, for a QS_NEW setting the file does not
 * record, quant_setting_before(q) (the file predates the setting): 0 with *v
 * set; 1 when the file records nothing of a setting that is not new; -1
 * after a message. */
int quant_io_setting_value(H5File *f, const QuantSetting *q, double *v);
/* The file's stats_dtype (/settings/stats_dtype): fp32 (reference mode) or
 * fp16 (deployment mode); files written before the setting existed are fp16. */
int quant_io_stats_dtype(H5File *f, QuantStatsDtype *d);
/* *rotate_half <- 1 when layer (l, k) of f is stored in the rotate-half row
 * order of its checkpoint (its "row_order" attribute), else 0; -1 with a
 * message for another value. */
int quant_io_row_order(H5File *f, const ModelConfig *c, int l, LinearKind k, int *rotate_half);
/* Decode block l of an open quantized-model file into m (model_set_linear),
 * rows in the harness's order whatever the layer's row_order. Each layer's
 * values must be in the file's stats_dtype (and stored in its type). */
int quant_io_load_block(H5File *f, Model *m, int l);
/* *bytes <- the host memory quant_io_load_block holds at its peak besides
 * the block's fp32 linears, over every block of f (the largest layer's
 * arrays as read and its decoded copy, an upper bound from the layers' shape
 * attributes, plus h5_read_buffer_bytes and what the allocator may keep of
 * the freed copies); -1 with a message naming the layer
 * when an attribute is missing or wrong. */
int quant_io_decode_bytes(H5File *f, const ModelConfig *c, size_t *bytes);
/* The same bound before the file exists, from the model's shape and the
 * settings it will be quantized with: every linear, rows stored rotate-half,
 * and, with outliers (a finite outlier_threshold), as many outliers as
 * weights (their count is known only after the run). For plans made before
 * quantizing (a sweep's point checked before it runs). */
size_t quant_io_decode_bytes_planned(const ModelConfig *c, const QuantParams *p);
/* Where a block-by-block walk (stream_eval.h) takes block l from: decoded
 * from the open quantized-model file f by quant_io_load_block, its
 * work_bytes quant_io_decode_bytes. f must stay open while the loader is
 * used. */
StreamLoader quant_io_block_loader(H5File *f);
/* Save a quantized model file (atomic). */
int quant_model_save(const char *path, const Model *m, const QuantRunSpec *spec, const QuantRun *run,
                     const Provenance *prov, const char *settings_json);
/* Read the layer (l, name) under g into q (owned arrays); name is the
 * family's (model_linear_name). quant_io_read_layer: LLaMA's layer (l, k). */
int quant_io_read_layer_named(H5File *f, const char *g, int l, const char *name, QuantLayer *q);
int quant_io_read_layer(H5File *f, const char *g, int l, LinearKind k, QuantLayer *q);
/* Load the base model named in the file (or model_path when given), check
 * that it is the model the file was made from (its model_sha256, model_hash.h;
 * a mismatch is refused unless `force`), then replace its linear layers by the
 * decoded quantized weights. t may be NULL. expect_stats_dtype: a
 * QuantStatsDtype the file must hold (a file of the other mode is refused), or
 * -1 for whatever it holds (info->params.stats_dtype). */
int quant_model_load(const char *path, const char *model_path, const char *tok_path, int expect_stats_dtype, int force,
                     Model *m, Tokenizer *t, QuantModelInfo *info);
/* The same checks for evaluation block by block (--max-memory): the base
 * model opened for block-by-block work (model_open_for), no block decoded;
 * the file is left open in *f (close it with h5_commit) for
 * quant_io_block_loader, which decodes each block when the walk reaches it. */
int quant_model_open_streamed(const char *path, const char *model_path, const char *tok_path, int expect_stats_dtype,
                              int force, Model *m, Tokenizer *t, QuantModelInfo *info, H5File **f);

#endif
