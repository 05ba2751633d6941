"""Embedding, the persistent index users open, hybrid retrieval, named collections."""
