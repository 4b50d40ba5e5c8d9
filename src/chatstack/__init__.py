"""chatstack: build a small ChatGPT-like assistant, stage by stage."""
