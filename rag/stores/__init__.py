"""Where an index keeps its chunks, vectors and keyword index: FAISS files or Milvus."""
