/* A stand-in for libnccl.so.2 that needs no GPU: every entry point NcclLibrary resolves, with
 * NCCL's C signatures (ncclComm_t as void*, enums as int). Variants are built from this one file:
 *   FAKE_NCCL_VERSION        what ncclGetVersion reports (default 22809, NCCL 2.28.9)
 *   FAKE_NCCL_OMIT_SPLIT     leave out ncclCommSplit (absent before NCCL 2.18.1)
 *   FAKE_NCCL_OMIT_ALLREDUCE leave out ncclAllReduce (a broken or foreign library)
 *   FAKE_NCCL_OMIT_SHRINK    leave out ncclCommShrink (absent before NCCL 2.27.3)
 *   FAKE_NCCL_WORKS          communicators exist: init, split and shrink succeed without peers,
 *                            count and rank answer from what created them, and
 *                            fake_nccl_shrink_log() tells a test what the last shrink was given
 *                            and how many communicators were destroyed and aborted;
 *                            fake_nccl_hold_aborts(1) makes ncclCommAbort block (as a real one
 *                            takes about 0.5 s) until fake_nccl_hold_aborts(0), 10 s at most */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

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

#ifdef FAKE_NCCL_WORKS
typedef struct {
  int count;
  int rank;
} FakeComm;

static int shrink_calls = 0;
static int shrink_flags = -1;
static int shrink_excluded[64];
static int shrink_excluded_count = 0;
/* Aborts may come from another thread than the test's: the counts and the hold are guarded. */
static pthread_mutex_t teardown_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t teardown_cv = PTHREAD_COND_INITIALIZER;
static int destroyed = 0;
static int aborted = 0;
static int aborts_held = 0;

/* Not part of NCCL: while `hold` is nonzero, ncclCommAbort waits (10 s at most). */
void fake_nccl_hold_aborts(int hold) {
  pthread_mutex_lock(&teardown_mu);
  aborts_held = hold;
  pthread_cond_broadcast(&teardown_cv);
  pthread_mutex_unlock(&teardown_mu);
}

static ncclComm_t NewComm(int count, int rank) {
  FakeComm* comm = (FakeComm*)malloc(sizeof(FakeComm));
  comm->count = count;
  comm->rank = rank;
  return comm;
}

/* Not part of NCCL: what the last ncclCommShrink was given, and the teardown counts. */
void fake_nccl_shrink_log(int* calls, int* flags, int* excluded, int* excluded_count,
                          int* destroy_calls, int* abort_calls) {
  *calls = shrink_calls;
  *flags = shrink_flags;
  for (int i = 0; i < shrink_excluded_count; ++i) excluded[i] = shrink_excluded[i];
  *excluded_count = shrink_excluded_count;
  pthread_mutex_lock(&teardown_mu);
  *destroy_calls = destroyed;
  *abort_calls = aborted;
  pthread_mutex_unlock(&teardown_mu);
}

int ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                           void* config) {
  (void)id, (void)config;
  *comm = NewComm(nranks, rank);
  return 0;
}

#ifndef FAKE_NCCL_OMIT_SPLIT
/* Every child is a group of one: enough for a world of one. */
int ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, void* config) {
  (void)comm, (void)key, (void)config;
  *newcomm = color < 0 ? NULL : NewComm(1, 0);
  return 0;
}
#endif

#ifndef FAKE_NCCL_OMIT_SHRINK
int ncclCommShrink(ncclComm_t comm, int* exclude, int exclude_count, ncclComm_t* newcomm,
                   void* config, int flags) {
  (void)config;
  const FakeComm* parent = (const FakeComm*)comm;
  ++shrink_calls;
  shrink_flags = flags;
  shrink_excluded_count = exclude_count < 64 ? exclude_count : 64;
  int below = 0;
  for (int i = 0; i < shrink_excluded_count; ++i) {
    shrink_excluded[i] = exclude[i];
    if (exclude[i] == parent->rank) return 4; /* as NCCL: the caller may not exclude itself */
    if (exclude[i] < parent->rank) ++below;
  }
  *newcomm = NewComm(parent->count - exclude_count, parent->rank - below);
  return 0;
}
#endif

int ncclCommFinalize(ncclComm_t comm) { return comm == NULL ? 4 : 0; }
int ncclCommDestroy(ncclComm_t comm) {
  if (comm == NULL) return 4;
  pthread_mutex_lock(&teardown_mu);
  ++destroyed;
  pthread_mutex_unlock(&teardown_mu);
  free(comm);
  return 0;
}
int ncclCommAbort(ncclComm_t comm) {
  if (comm == NULL) return 4;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&teardown_mu);
  while (aborts_held) {
    if (pthread_cond_timedwait(&teardown_cv, &teardown_mu, &deadline) != 0) break;
  }
  ++aborted;
  pthread_mutex_unlock(&teardown_mu);
  free(comm);
  return 0;
}

int ncclCommCount(ncclComm_t comm, int* count) {
  *count = ((const FakeComm*)comm)->count;
  return 0;
}

int ncclCommUserRank(ncclComm_t comm, int* rank) {
  *rank = ((const FakeComm*)comm)->rank;
  return 0;
}
#else
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

#ifndef FAKE_NCCL_OMIT_SHRINK
int ncclCommShrink(ncclComm_t comm, int* exclude, int exclude_count, ncclComm_t* newcomm,
                   void* config, int flags) {
  (void)comm, (void)exclude, (void)exclude_count, (void)config, (void)flags;
  *newcomm = NULL;
  return 5;
}
#endif

int ncclCommFinalize(ncclComm_t comm) { return comm == NULL ? 4 : 0; }
int ncclCommDestroy(ncclComm_t comm) { return comm == NULL ? 4 : 0; }
int ncclCommAbort(ncclComm_t comm) { return comm == NULL ? 4 : 0; }
#endif

int ncclCommGetAsyncError(ncclComm_t comm, int* async_error) {
  (void)comm;
  *async_error = 0;
  return 0;
}

#ifndef FAKE_NCCL_WORKS
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
#endif

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
