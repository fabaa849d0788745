/* experiment_check.h: everything a run of an experiment can be refused for
 * before it starts, each check reporting FILE:LINE: SECTION.KEY (see
 * experiment.h for the file itself). */
#ifndef QH_EXPERIMENT_CHECK_H
#define QH_EXPERIMENT_CHECK_H

#include "experiment.h"

/* Check that the model checkpoint and tokenizer exist: -1 with a message naming
 * the file, line and key (and the environment variable, when the path used one). */
int experiment_check_model(const Experiment *x);

/* Check the shape-dependent settings of every point against the model's
 * sub-layers (groupsize <= the fewest input columns, qq_groupsize <= the fewest
 * rows): -1 after a message naming FILE:LINE: SECTION.KEY for each misfit;
 * then what quantize_model checks before any work (quant_params_validate on
 * every sub-layer shape), a failure named with the point's settings and where
 * each came from. */
int experiment_check_shapes(const Experiment *x, const ModelConfig *c);

/* The model's configuration (its shape), cheaply: the llama2.c header
 * (validated against the file size, the weights mapped but not read) or a
 * Hugging Face directory's config.json. -1 after a message naming FILE:LINE:
 * model.path. */
int experiment_model_config(const Experiment *x, ModelConfig *c);

/* [run] device = cuda where no CUDA GPU is visible (or the build has none):
 * -1 after a message naming FILE:LINE: run.device. The GPU is looked for in a
 * child process, so that the caller holds no CUDA state when it forks. */
int experiment_check_device(const Experiment *x);

/* Every data file the points need exists: the evaluation datasets and the
 * calibration dataset of every point that calibrates (file:PATH directly, the
 * named datasets under the data root, as datasets.h resolves them). -1 after a
 * message per missing file naming FILE:LINE: SECTION.KEY (or the default), and
 * where the data root came from; the `make data` hint only for the files of
 * datasets/manifest.tsv. */
int experiment_check_data(const Experiment *x);

/* Everything a run can be refused for before it starts, each reported:
 * experiment_check_model, the model's configuration and experiment_check_shapes,
 * [speed]'s tokens and prefix against the model's context, the tokenizer (given, or found beside the model as the run will look for it),
 * experiment_check_data, experiment_check_output, and (when `here`, i.e. the
 * points run on this machine, not as Slurm tasks elsewhere)
 * experiment_check_device. 0 or -1. */
int experiment_check_run(const Experiment *x, int here);

/* The output folder can be written: its deepest existing folder is a folder
 * where a file can really be created (a probe file, removed at once), so that
 * /proc, /sys or a read-only mount are refused before the run. -1 after a
 * message naming FILE:LINE: output.dir (experiment_check.c). */
int experiment_check_output(const Experiment *x);

/* [eval] seqlen, or the model's default window (eval_default_seqlen) when unset. */
int experiment_eval_seqlen(const Experiment *x, const ModelConfig *c);

/* The experiment's tokenizer ([model] tokenizer, else the one found beside
 * the model for c's vocabulary) loaded into *tok; -1 with a message naming the
 * experiment file when none is found or it does not load. */
int experiment_tokenizer(const Experiment *x, const ModelConfig *c, Tokenizer *tok);

/* Every evaluation dataset, built as the run builds it (tokenized with the
 * model's tokenizer), holds at least one window of the evaluation seqlen: -1
 * after a message naming FILE:LINE: eval.seqlen and the dataset's token count.
 * Costs a tokenization of each dataset (`sweep --check` and `--slurm` only). */
int experiment_check_windows(const Experiment *x, const ModelConfig *c);

/* Do the points run on a GPU? run.device cuda: yes; cpu: no; auto: a GPU is
 * visible (asked in a child process, experiment_check_device's way) when
 * `here`, else [slurm] gpus > 0 (the tasks run elsewhere). */
int experiment_on_gpu(const Experiment *x, int here);

/* The most windows any evaluation dataset gives (tokenized as the run does);
 * [eval] max_windows when set (then nothing is tokenized); -1 after a message. */
long experiment_eval_windows(const Experiment *x, const ModelConfig *c);

/* [run] max_memory / max_device_memory (experiment_budget.c): the memory plan
 * (block_run.h) of the full-precision evaluation and of every point
 * (quantization, then evaluation from its file) within the budgets, as the run
 * makes it (auto: the whole-model plan against the host's available memory
 * decides), the device's free memory unknown here (the budgets alone). -1
 * after a message naming FILE:LINE: run.max_memory and the job that cannot
 * fit. windows: evaluation windows per dataset (1 for the check: the host
 * needs room for one, chunks take the rest). plans: non-NULL: every job's
 * plan printed there (`sweep --plan`). Nothing is written. */
int experiment_check_budgets(const Experiment *x, const ModelConfig *c, int on_gpu, long windows, FILE *plans);

#endif
