"""Qt-free core of QuantDesk: hardware, GGUF reading, the model library, settings.

Nothing under this package may import PySide6 (a test enforces it), so every capability here can
be used from the command line, from tests and from worker threads alike.
"""
