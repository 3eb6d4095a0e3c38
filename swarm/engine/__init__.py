"""Everything that touches llama.cpp: the model adapter, sequences, the batching engine."""
