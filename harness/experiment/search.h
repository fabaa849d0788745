/* search.h: the sweep mode of an experiment with a [search] section: instead
 * of the product of its lists, one knob of one method (group size, outlier
 * threshold or bits) is bisected until the setting that reaches the target
 * perplexity and the one that misses it are within the tolerance. The knob is
 * assumed monotone in perplexity over the range (bits and outlier threshold
 * as they are; a larger group size or threshold costing fewer bits and more
 * perplexity); which end reaches the target is measured, not assumed.
 *
 * Every step is an ordinary point (<out>/points/<id>.h5, locked and resumable,
 * listed in sweep.json so that `report` shows it), the full-precision
 * evaluation is run first (a relative target needs it), and the steps with the
 * outcome are written to <out>/search.md. Not here: running one point
 * (sweep.h), the settings (experiment.h). */
#ifndef QH_SEARCH_H
#define QH_SEARCH_H

#include "experiment.h"
#include "sweep.h"

/* Run the search of x (x->search.on). 0 when it ran to its end, whatever
 * the outcome (reached within the tolerance, reached already at the cheaper
 * end of the range, or not reached in the range: each said so); -1 when a
 * step failed. */
int search_run(const Experiment *x, const SweepOptions *o);

/* The next setting between `good` (reaches the target) and `bad` (misses it):
 * the midpoint, rounded down for the integer knobs; NaN when they are within
 * `tol` (for integer knobs: also when adjacent). Exposed for tests. */
double search_next(double good, double bad, double tol, int integer);

#endif
