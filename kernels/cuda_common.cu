/* cuda_common.cu: CUDA runtime helpers shared by the kernels: the device count
 * behind qh_cuda_available() (forward.h). The CUDA forward backend itself is in
 * forward_cuda.cu, its kernels in forward_kernels.cu. */
#include <cuda_runtime.h>
#include <unistd.h>

#include "cuda_check.h"

/* 0 without a usable device. Where the NVIDIA kernel driver is loaded but
 * CUDA cannot start (a driver older than the toolkit, a broken installation),
 * that is said once on stderr, since the GPU tests then report skipped and the
 * backend refuses --device cuda. Without the driver (CPU machines) CUDA also
 * answers "insufficient driver": nothing is said then. */
extern "C" int cuda_device_count(void);

/* Bytes free on the current device (0 when it cannot be asked). */
extern "C" size_t cuda_free_bytes(void) {
    size_t free_b = 0, total_b = 0;
    if (cuda_device_count() < 1 || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return free_b;
}

extern "C" int cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        static int said;
        if (e != cudaErrorNoDevice && !said++ && access("/proc/driver/nvidia/version", F_OK) == 0)
            fprintf(stderr, "qharness: warning: CUDA cannot start: %s (%s)\n", cudaGetErrorString(e), cudaGetErrorName(e));
        cudaGetLastError(); /* clear the sticky error */
        return 0;
    }
    return n;
}
