"""Sources: each reads one recipe `sources[i]` entry and yields raw or chat examples."""
