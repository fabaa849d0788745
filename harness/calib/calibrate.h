/* calibrate.h: quantizing a whole model layer by layer with sequential
 * calibration (SPEC 1): calibration windows, block-by-block Hessians from the
 * already-quantized prefix of the model, each sub-layer replaced by its decoded
 * quantized weights, each block's output recomputed before it feeds the next.
 * The per-layer algorithms are quant/; the forward pass is any forward.h backend. */
#ifndef QH_CALIBRATE_H
#define QH_CALIBRATE_H

#include <stdint.h>

#include "datasets.h"
#include "forward.h"
#include "model.h"
#include "quant.h"
#include "settings.h"

struct QuantRun;

typedef struct QuantRunSpec {
    const char *method;     /* a name of quant_methods[] (settings.h) */
    QuantParams params;     /* params.true_sequential: the family's groups (arch.h), LLaMA [q,k,v] -> [o] -> [gate,up] -> [down] */
    const char *calib;      /* c4 | wikitext2 | ptb | file:PATH */
    int nsamples, seqlen;
    uint64_t seed;
    const char *data_root;
    QhDevice device;
    /* The device side of the memory plan (forward_create_opts): device_stream 1
     * keeps one block's weights on the GPU at a time (automatic for a model read
     * block by block or too large for the GPU); max_device_memory (bytes, 0:
     * what the GPU has free) bounds the backend's allocations. */
    int device_stream;
    size_t max_device_memory;
    /* Optional, for work under a memory budget: called once block l is
     * quantized and its outputs computed (e.g. to write its layers to the
     * output file); afterwards the block's compressed layers are freed and its
     * weights released (model_release_block): the model no longer holds the
     * quantized block, the file does. */
    int (*block_done)(void *user, const struct QuantRun *run, int layer);
    void *block_user;
    /* Optional: called with each sub-layer's Hessian H (n, n) = (2/N) sum of
     * x x^T over the calibration tokens, N = windows (SPEC 1.3), just before
     * that sub-layer is quantized with it (e.g. to keep it, or to compare the
     * Hessians of two backends). Not called for rtn without calibration. */
    int (*hessian_done)(void *user, int layer, LinearKind kind, const double *H, int n);
    void *hessian_user;
} QuantRunSpec;

typedef struct SubLayerReport {
    int layer;
    LinearKind kind;
    int m, n;
    double proxy_loss;
    int64_t n_outliers;
    double outlier_fraction;
    double formula_bits;      /* SPEC 6 formula with this layer's outlier fraction */
    int64_t stored_bits_total; /* bits of this layer in the stored format (all its tensors) */
    double damp_used;
    int damp_retries;
    int n_dead;
    double seconds;
} SubLayerReport;

/* Stored bits per parameter of one sub-layer (the unit of formula_bits). */
static inline double sublayer_stored_bits(const SubLayerReport *r) {
    return (double)r->stored_bits_total / ((double)r->m * (double)r->n);
}

typedef struct QuantRun {
    int n_layers;
    int qk_rotate_half;       /* the model's cfg.qk_rotate_half: layers[] of wq / wk hold rotate-half rows */
    int arch;                 /* the model's ArchId: which LinearKinds exist (arch.h n_lin) and their names */
    QuantLayer *layers;       /* (L * LIN_COUNT), index layer * LIN_COUNT + kind; kinds >= n_lin unused */
    SubLayerReport *reports;  /* (L * LIN_COUNT) */
    double *block_rel_err;    /* (L) ||Y_q - Y_fp|| / ||Y_fp|| over the calibration windows */
    double *awq_ratio;        /* (L * LIN_COUNT) awq: the exponent of mean |x| its scales were chosen with (0 for a
                               * linear whose scales are not searched); NULL for the other methods */
    TokenStream calib_info;   /* what the calibration windows came from (ids not kept) */
    int64_t params;           /* quantized parameters */
    double avg_bits;          /* SPEC 6 formula over the model (parameter-weighted) */
    double stored_bits;       /* stored bits per quantized parameter */
    QuantStatsDtype stats_dtype; /* the precision of the stored values (the spec's params.stats_dtype) */
    double outlier_fraction;
    double total_proxy_loss;
    /* seconds per phase */
    double t_calib_forward, t_hessian, t_factor, t_sweep, t_loo, t_pack, t_total;
    int blocks_streamed;      /* the GPU held one block at a time (forward_stream_stats) */
    double t_upload;          /* then: seconds spent uploading blocks (inside the phases above) */
    long block_uploads;       /* and how many block uploads */
    const char *device;
    const char *calib_acts;   /* where the backend kept the calibration activations: "host" or "device"
                               * (NULL for rtn without calibration) */
} QuantRun;

/* Quantize m in place (its linear layers are replaced by the decoded weights).
 * out->layers hold each sub-layer's rows in the checkpoint's own order
 * (model_ckpt_rows_permuted), as quantize_linear. */
int quantize_model(Model *m, const Tokenizer *tok, const QuantRunSpec *spec, QuantRun *out);
void quant_run_free(QuantRun *r);

/* Do the parameters fit every sub-layer shape of a model of config c (what
 * quantize_model checks before any work)? 0, or -1 after quant_params_validate's
 * message with *bad_kind (may be NULL) the first sub-layer that does not. */
int quant_params_fit_model(const QuantParams *p, const char *method, const ModelConfig *c, LinearKind *bad_kind);

/* The backend's layer quantizer (quantize_layer_ref or its CUDA twin). */
typedef struct LayerQuantizer LayerQuantizer;

/* Quantize linear k, W (rows, cols) as the harness holds it, of a model of
 * config c with Hessian H, in the checkpoint's row order: q holds the rows as
 * the checkpoint orders them (so that SpQR's second-level groups are the
 * checkpoint's consecutive rows, as in the reference code, and the stored file
 * follows the checkpoint), W_deq (rows, cols) the decoded weights in the
 * harness's order. lq NULL: quantize_layer_ref. */
int quantize_linear(const LayerQuantizer *lq, const ModelConfig *c, LinearKind k, const char *method, const float *W,
                    const double *H, const QuantParams *p, QuantLayer *q, float *W_deq);

#include <jansson.h>
/* The resolved settings of a run as a JSON object (for provenance and --json). */
json_t *quant_spec_json(const QuantRunSpec *s);
/* The run's summary and per-layer table as JSON. */
json_t *quant_run_json(const QuantRun *r);
#endif
