"""Scoring the assistant against gold sets, and the reports `rag eval` writes."""
