"""recipe-runner: declarative fine-tuning recipes for code LLMs."""
