/* A stand-in for libcudart.so that needs no GPU: every entry point NcclLibrary resolves, with the
 * CUDA runtime's C signatures (cudaError_t and cudaMemcpyKind as int, cudaStream_t as void*).
 *   FAKE_CUDA_DEVICE_COUNT  what cudaGetDeviceCount reports (default 2)
 *   FAKE_CUDA_ERROR         make cudaGetDeviceCount fail with this cudaError_t instead */
#include <stddef.h>

#ifndef FAKE_CUDA_DEVICE_COUNT
#define FAKE_CUDA_DEVICE_COUNT 2
#endif

int cudaGetDeviceCount(int* count) {
#ifdef FAKE_CUDA_ERROR
  *count = 0;
  return FAKE_CUDA_ERROR;
#else
  *count = FAKE_CUDA_DEVICE_COUNT;
  return 0;
#endif
}

int cudaSetDevice(int device) { return device >= 0 && device < FAKE_CUDA_DEVICE_COUNT ? 0 : 101; }

int cudaMalloc(void** pointer, size_t bytes) {
  (void)bytes;
  *pointer = NULL;
  return 2; /* cudaErrorMemoryAllocation */
}

int cudaFree(void* pointer) {
  (void)pointer;
  return 0;
}

int cudaMemcpy(void* dst, const void* src, size_t bytes, int kind) {
  (void)dst, (void)src, (void)bytes, (void)kind;
  return 1;
}

int cudaStreamCreateWithFlags(void** stream, unsigned int flags) {
  (void)flags;
  *stream = NULL;
  return 0;
}

int cudaStreamSynchronize(void* stream) {
  (void)stream;
  return 0;
}

int cudaStreamDestroy(void* stream) {
  (void)stream;
  return 0;
}

const char* cudaGetErrorString(int error) {
  switch (error) {
    case 0:
      return "no error";
    case 35:
      return "CUDA driver version is insufficient for CUDA runtime version";
    case 100:
      return "no CUDA-capable device is detected";
    default:
      return "unrecognized error code";
  }
}

int cudaRuntimeGetVersion(int* version) {
  *version = 13000;
  return 0;
}

int cudaDriverGetVersion(int* version) {
  *version = 0;
  return 0;
}
