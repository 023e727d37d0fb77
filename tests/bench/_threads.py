"""Imported before numpy by the benchmarks: one BLAS/OpenMP thread per process.

The benchmarks' matrices are small (a Gaussian process over at most a few hundred
trials); BLAS threads gain nothing on them and, spinning against other processes on a
shared machine, cost several times the CPU. The variables only take effect when set
before numpy is first imported, hence this module. An explicit setting wins.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
