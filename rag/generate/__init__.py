"""Text generators: llama.cpp (here or in its own process), transformers, OpenAI-compatible servers."""
