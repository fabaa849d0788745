/* cuda_check.h: one check macro per GPU library (CUDA runtime, cuBLAS,
 * cuSOLVER), each safe as a statement, printing the call, file and line and
 * returning -1 from the enclosing function. */
#ifndef QH_CUDA_CHECK_H
#define QH_CUDA_CHECK_H

#include <stdio.h>

#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "qharness: CUDA error %s: %s (%s:%d)\n", cudaGetErrorString(e_), #call, \
                    __FILE__, __LINE__);                                                       \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

/* After a kernel launch. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                     \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            fprintf(stderr, "qharness: cuBLAS error %d: %s (%s:%d)\n", (int)s_, #call, __FILE__, __LINE__); \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

#define CUSOLVER_CHECK(call)                                                                   \
    do {                                                                                       \
        cusolverStatus_t s_ = (call);                                                          \
        if (s_ != CUSOLVER_STATUS_SUCCESS) {                                                   \
            fprintf(stderr, "qharness: cuSOLVER error %d: %s (%s:%d)\n", (int)s_, #call, __FILE__, __LINE__); \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

#endif
