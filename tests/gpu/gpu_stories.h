/* gpu_stories.h: the prologue of the GPU tests that run on stories260K
 * (test_gpu_stream, test_gpu_pipeline, test_gpu_kld, test_gpu_zeroshot): skip
 * without a CUDA GPU, then open the model and its tokenizer through
 * stories_fixture.h (skip when the file is not there, fail when it is there
 * but does not open). Header-only. Not here: what the tests check. */
#ifndef QH_GPU_STORIES_H
#define QH_GPU_STORIES_H

#include <stdio.h>

#include "check.h"
#include "forward.h"
#include "stories_fixture.h"

/* 0: a GPU is visible and stories260K is open in m (its tokenizer in t when t
 * is not NULL); otherwise a SKIP (no GPU, no model file) or a failed CHECK
 * (the file does not open) was recorded and the caller returns test_summary(). */
static inline int gpu_stories_open(Model *m, Tokenizer *t, const char *what) {
    if (!qh_cuda_available()) {
        char why[256];
        snprintf(why, sizeof why, "no CUDA GPU visible (or a build without nvcc): %s not run", what);
        SKIP(why);
        return 1;
    }
    return stories_open_checked(m, t);
}

#endif
