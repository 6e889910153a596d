module recipe-runner/tests/ollama_render

go 1.19
