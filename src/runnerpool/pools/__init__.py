"""Runner pools: where placers get their runners."""

from __future__ import annotations

from ._static import StaticRunnerPool as StaticRunnerPool

__all__ = ["StaticRunnerPool"]
