"""kdbench: knowledge-distillation benchmark on CIFAR-10 (library shared by scripts/)."""

__version__ = "0.1.0"


class KdbenchError(Exception):
    """An error the user can fix; scripts print its message without a traceback."""
