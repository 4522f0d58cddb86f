"""Hugging Face checkpoints to GGUF, without torch, as llama.cpp's converter writes them."""
