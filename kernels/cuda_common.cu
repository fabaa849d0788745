/* cuda_common.cu: CUDA runtime helpers shared by the kernels: device count.
 * (The CUDA forward backend is built on these.) */
#include <cuda_runtime.h>

#include "cuda_check.h"

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

extern "C" int forward_cuda_create(const void *m, int max_T, void **out) {
    (void)m; (void)max_T; (void)out;
    return -1;
}
