"""Runner pools: where placers get their runners, and which of them are healthy."""

from __future__ import annotations

from ._outlier import OutlierDetector as OutlierDetector
from ._outlier import OutlierPolicy as OutlierPolicy
from ._outlier import RunnerHealth as RunnerHealth
from ._static import StaticRunnerPool as StaticRunnerPool

__all__ = ["OutlierDetector", "OutlierPolicy", "RunnerHealth", "StaticRunnerPool"]
