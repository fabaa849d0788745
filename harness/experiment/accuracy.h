/* accuracy.h: "bits at equal accuracy" and published values, the parts that
 * are pure arithmetic and parsing (the tables are report.h's):
 *   - a method's Pareto front in (average bits, perplexity), and along it the
 *     fewest bits that reach a target perplexity, or the perplexity at given
 *     bits: ln ppl linear in bits between neighbouring measured points, never
 *     extrapolated beyond the measured range ("not reached");
 *   - targets ([report] targets = +1%, wikitext2:5.88): relative to the
 *     full-precision perplexity of every dataset, or absolute on one;
 *   - published values ([paper] NAME = key=value, ..., source=TEXT): a
 *     perplexity of a method at given settings (or at given average bits), or
 *     the average bits a method needs for a given perplexity, with its source.
 * Not here: reading results (report.h), the experiment file's other keys
 * (experiment.h). */
#ifndef QH_ACCURACY_H
#define QH_ACCURACY_H

#include <stddef.h>

/* One measured point: average bits (SPEC 6) and perplexity. */
typedef struct BitsPpl {
    double bits, ppl;
} BitsPpl;

/* The Pareto front of pts (n), in place: sorted by bits, keeping each point
 * whose perplexity is below every point with fewer or equal bits (NaN or
 * non-finite perplexities dropped). Returns its size; front[0] has the fewest
 * bits and the highest perplexity. */
int acc_front(BitsPpl *pts, int n);

typedef enum {
    ACC_INTERPOLATED = 0, /* between two front points (or exactly at one) */
    ACC_AT_FEWEST,        /* the front's fewest-bits point already reaches it: bits = that point's, an upper bound */
    ACC_NOT_REACHED,      /* no measured point reaches it: bits = NaN */
} AccStatus;
extern const char *const acc_status_names[3];

/* The fewest average bits at which the front (n, from acc_front) reaches
 * ppl <= target. */
double acc_bits_at_ppl(const BitsPpl *front, int n, double target, AccStatus *st);
/* The perplexity at `bits` along the front (n): NaN outside its bits range. */
double acc_ppl_at_bits(const BitsPpl *front, int n, double bits);

/* A target perplexity: relative (fp x (1 + rel)) on every dataset when dataset
 * is empty, or on that dataset; or absolute (value) on one dataset. */
typedef struct AccTarget {
    char dataset[64]; /* "" = every dataset (relative targets only) */
    int relative;     /* 1: value is a fraction above full precision (0.01 = +1%) */
    double value;
} AccTarget;
/* "+1%", "wikitext2:+2.5%", "wikitext2:5.88" -> t; 0, or -1 with `why`. */
int acc_target_parse(const char *s, AccTarget *t, char *why, size_t n);
/* "+1%" / "wikitext2:5.88" (the form acc_target_parse reads) */
void acc_target_text(const AccTarget *t, char *buf, size_t n);

/* One published number of [paper]. */
#define PAPER_MAX_CONDS 16
typedef enum { PAPER_PPL = 0, PAPER_BITS = 1 } PaperKind;
typedef struct PaperValue {
    char name[64];       /* the entry's key in [paper] */
    int line;            /* its line in the experiment file */
    char method[16];     /* fp16 (the full-precision evaluation) or a method of quant_methods[] */
    char dataset[64];
    PaperKind kind;      /* PAPER_PPL: value is a perplexity; PAPER_BITS: average bits */
    double value;
    double at;           /* PAPER_PPL: at these average bits (NaN: at the point settings of conds);
                            PAPER_BITS: the perplexity reached (at_ppl, required) */
    int nconds;          /* point settings it was measured at (PAPER_PPL without at_bits), e.g. wbits=4 */
    char cond_key[PAPER_MAX_CONDS][32];
    char cond_val[PAPER_MAX_CONDS][64];
    double cond_num[PAPER_MAX_CONDS]; /* the value parsed by the key's rules (experiment.c; "row" -> 0), NaN if text */
    char source[512];    /* where it was published (the rest of the line after source=) */
} PaperValue;

/* Parse the value of one [paper] entry ("method=gptq, wbits=4, groupsize=row,
 * dataset=wikitext2, ppl=6.09, source=GPTQ README, LLaMA table"): fields
 * key=value separated by commas, source last (it may hold commas). The
 * setting keys are not judged here (experiment.c checks them against its
 * key table); `check_dataset` (may be NULL) judges the dataset name. 0, or
 * -1 with `why`. */
int paper_parse(const char *name, const char *value, PaperValue *p, char *why, size_t n,
                int (*check_dataset)(const char *v, char *why, size_t n));
/* "wbits=4 groupsize=row", "at 4.07 bits", "to reach ppl 5.88" */
void paper_setting_text(const PaperValue *p, char *buf, size_t n);

#endif
