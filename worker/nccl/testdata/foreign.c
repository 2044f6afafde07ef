/* A shared library that is not NCCL: it exports none of NCCL's symbols. */
int foreign_answer(void) { return 42; }
