/* speed.h: generation speed at batch size 1, the measurement of the SpQR
 * paper's speed table: tokens per second of greedy incremental decode in its
 * two setups ("scratch": tokens generated from the start token, nothing
 * before them; "prefix": tokens generated after a prompt of `prefix` tokens,
 * the paper's 1024), and the time of one matrix-vector product per layer
 * shape. Only the generated tokens are timed (the prefix's prefill is not);
 * each figure is the median of `repeats` runs. Works on any Forward (dense,
 * or with packed linears set). Not here: loading models or quantized files,
 * tables (harness/experiment/speed_run.h). */
#ifndef QH_SPEED_H
#define QH_SPEED_H

#include "forward.h"
#include "packed_linear.h"

typedef enum { SPEED_SCRATCH = 0, SPEED_PREFIX, SPEED_NSETUPS } SpeedSetup;
extern const char *const speed_setup_names[SPEED_NSETUPS]; /* "scratch", "prefix" */

#define SPEED_MAX_REPEATS 100
#define SPEED_PAPER_PREFIX 1024 /* the paper's prefix */

typedef struct SpeedSpec {
    unsigned setups; /* bit s: setup s is run */
    int gen;         /* tokens generated per run (the paper's 100) */
    int prefix;      /* the prefix setup's prompt, resolved (speed_resolve_prefix) */
    int repeats;     /* runs per setup, 1..SPEED_MAX_REPEATS */
} SpeedSpec;

/* "scratch,prefix" (any order, either) -> bits; -1 with a message naming
 * `what` for another name or an empty list. */
int speed_setups_parse(const char *list, const char *what, unsigned *setups);
/* The prefix for a model of context c->seq_len: want >= 0 (given): refused by
 * name when want + gen exceeds the context; want < 0: the paper's 1024, or,
 * for a shorter model, its context less gen, with *note saying so (else
 * note empty). gen itself must fit (1 .. seq_len - 1). */
int speed_resolve_prefix(const ModelConfig *c, int gen, long want, const char *what, int *prefix, char *note,
                         size_t n);

typedef struct SpeedTimes {
    double tok_s[SPEED_NSETUPS];                     /* medians; NAN for a setup not run */
    double runs[SPEED_NSETUPS][SPEED_MAX_REPEATS];   /* tokens per second of each run */
} SpeedTimes;

/* For each setup of s, `repeats` runs on f: decode_reset(prefix + gen), the
 * prefix (pseudo-random ids, seeded, the same every run) decoded at once and
 * not timed, then gen single-token decode steps from the start token, each
 * feeding the argmax of the step before (greedy generation), timed on the
 * wall clock; one more run first, untimed (warm-up: caches, thread pool). */
int speed_generation(Forward *f, const SpeedSpec *s, int start_token, SpeedTimes *out);

/* The distinct (out, in) shapes of a block's linears, in the family's order:
 * returns how many (<= LIN_COUNT), kind[i] the first linear of shape i. */
int speed_layer_shapes(const ModelConfig *c, int *out, int *in, int *kind);

/* The median microseconds of one matrix-vector product y (out) = W x (in):
 * through p (host memory) when p is given, else W (out, in) fp32 through
 * OpenBLAS sgemm of one row (the CPU backend's product). -1 with a message
 * for a packed linear in device memory. */
int speed_matvec_us(const PackedLinear *p, const float *W, int out, int in, int repeats, double *us);

#endif
