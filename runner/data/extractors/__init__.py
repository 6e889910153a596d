"""Extractors: turn raw documents (files, doc sections) into chat examples, no LLM needed."""
