"""The assistant served: the Gradio chat window, the OpenAI-compatible API, MCP, feedback."""
