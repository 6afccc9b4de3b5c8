"""Commands of `memora` (being written); registered by app/training/cli.py."""

from __future__ import annotations
