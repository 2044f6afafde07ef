/* A stand-in for libnccl.so.2 that needs no GPU: every entry point NcclLibrary resolves, with
 * NCCL's C signatures (ncclComm_t as void*, enums as int). Variants are built from this one file:
 *   FAKE_NCCL_VERSION        what ncclGetVersion reports (default 22809, NCCL 2.28.9)
 *   FAKE_NCCL_OMIT_SPLIT     leave out ncclCommSplit (absent before NCCL 2.18.1)
 *   FAKE_NCCL_OMIT_ALLREDUCE leave out ncclAllReduce (a broken or foreign library) */
#include <stddef.h>

#ifndef FAKE_NCCL_VERSION
#define FAKE_NCCL_VERSION 22809
#endif

typedef void* ncclComm_t;
typedef struct {
  char internal[128];
} ncclUniqueId;

int ncclGetVersion(int* version) {
  *version = FAKE_NCCL_VERSION;
  return 0;
}

int ncclGetUniqueId(ncclUniqueId* id) {
  for (int i = 0; i < 128; ++i) id->internal[i] = (char)i;
  return 0;
}

int ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                           void* config) {
  (void)nranks, (void)id, (void)rank, (void)config;
  *comm = NULL;
  return 1; /* ncclUnhandledCudaError: there is no device behind this fake. */
}

#ifndef FAKE_NCCL_OMIT_SPLIT
int ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, void* config) {
  (void)comm, (void)color, (void)key, (void)config;
  *newcomm = NULL;
  return 5;
}
#endif

int ncclCommFinalize(ncclComm_t comm) { return comm == NULL ? 4 : 0; }
int ncclCommDestroy(ncclComm_t comm) { return comm == NULL ? 4 : 0; }
int ncclCommAbort(ncclComm_t comm) { return comm == NULL ? 4 : 0; }

int ncclCommGetAsyncError(ncclComm_t comm, int* async_error) {
  (void)comm;
  *async_error = 0;
  return 0;
}

int ncclCommCount(ncclComm_t comm, int* count) {
  (void)comm;
  *count = 0;
  return 4;
}

int ncclCommUserRank(ncclComm_t comm, int* rank) {
  (void)comm;
  *rank = 0;
  return 4;
}

#ifndef FAKE_NCCL_OMIT_ALLREDUCE
int ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, int datatype, int op,
                  ncclComm_t comm, void* stream) {
  (void)sendbuff, (void)recvbuff, (void)count, (void)datatype, (void)op, (void)comm;
  (void)stream;
  return 4;
}
#endif

int ncclGroupStart(void) { return 0; }
int ncclGroupEnd(void) { return 0; }

const char* ncclGetErrorString(int result) {
  switch (result) {
    case 0:
      return "no error";
    case 4:
      return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    default:
      return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t comm) {
  (void)comm;
  return "fake NCCL: last error";
}
