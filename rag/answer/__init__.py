"""From a question to a checked answer: prompt, generate, verify citations, judge, decide trust."""
