"""The run folder: stage keys, the content-addressed stage store, the lock file."""
