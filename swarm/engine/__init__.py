"""Everything that touches llama.cpp: the model adapter, sequences, the batching engine."""

import os

# llama.cpp's CPU threads are OpenMP's, and libgomp lets an idle thread spin 300,000 times before it
# sleeps. Inside a decode, spinning keeps the threads in step at each of its hundreds of barriers:
# sleeping there (OMP_WAIT_POLICY=PASSIVE) cost a quarter of the decode rate at 8 streams. After a
# decode, a long spin burns the cores that the worker's gRPC thread, the coordinator and Redis need
# to pass the token on. This spin covers the barriers and then yields (docs/benchmarks.md). libgomp
# reads it once, when llama.cpp loads: every import of llama_cpp in swarm comes after this
# package's. An operator's own setting wins.
OPENMP_DEFAULTS = {"GOMP_SPINCOUNT": "50000"}
OPENMP_SET_BY_SWARM = tuple(name for name in OPENMP_DEFAULTS if name not in os.environ)
for _name in OPENMP_SET_BY_SWARM:
    os.environ[_name] = OPENMP_DEFAULTS[_name]
