"""Documents in: loading files and web pages, cleaning their text, chunking it."""
