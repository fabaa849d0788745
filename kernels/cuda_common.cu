/* cuda_common.cu: CUDA runtime helpers shared by the kernels: the device count
 * behind qh_cuda_available() (forward.h). The CUDA forward backend itself is in
 * forward_cuda.cu, its kernels in forward_kernels.cu. */
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
