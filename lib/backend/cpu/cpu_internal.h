/* cpu_internal.h - shared by the files of the CPU backend. */
#ifndef CSNN_CPU_INTERNAL_H
#define CSNN_CPU_INTERNAL_H

#include "csnn_internal.h"

typedef struct cpu_device {
    int n_threads;
    csnn_pool *pool;
} cpu_device;

#endif
