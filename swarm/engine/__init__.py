"""Everything that touches llama.cpp: the model adapter, sequences, the batching engine."""

import os

# llama.cpp's CPU threads are OpenMP's. By default libgomp keeps them spinning for a while after each
# decode, burning the cores that the worker's gRPC thread, the coordinator and Redis need to pass the
# token on; on a machine whose cores are all in use that spinning multiplied prefill time (issue 14).
# Passive waiting costs a futex wake per decode. libgomp reads this once, when llama.cpp loads: every
# import of llama_cpp in swarm comes after this package's. An operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
