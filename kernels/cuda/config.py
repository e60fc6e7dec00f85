"""Tunables of the CUDA kernels, in one place."""

#: threads per block of every ensemble launch. One trajectory per thread with a few
#: hundred bytes of registers/local memory each: 128 keeps several blocks resident per
#: multiprocessor for models of a few states (measure with benchmarks/ensemble.py).
THREADS_PER_BLOCK = 128

#: under the simulator each thread is a Python thread: fewer per block costs nothing there
SIMULATOR_THREADS_PER_BLOCK = 32
