"""The FAST paper's toy case study (Figure 3): naive per-step tokens vs FAST across sampling rates.

Needs PyTorch (`pip install 'actok[learned]'`). Run with `actok casestudy` or `python -m actok.casestudy`.
"""

from actok.casestudy.main import main

__all__ = ["main"]
