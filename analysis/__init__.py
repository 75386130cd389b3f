"""analysis: model graphlets, component run history, waste, SQL views and the batch report.

Entry point :func:`analyze` (re)builds, inside the warehouse, the tables ``graphlets``,
``graphlet_members`` and the views ``execution_waste`` and ``component_runs`` (plus the helper
tables ``type_roles``, ``analysis_executions``, ``analysis_artifacts``).
Sources are rebuilt one by one when their ingested data or the roles changed, set-based.
"""

from __future__ import annotations

from analysis.analyze import AnalysisSummary, analyze
from analysis.config import AnalysisConfig
from analysis.errors import AnalysisError
from analysis.roles import Roles, default_roles, load_roles

__all__ = [
    "AnalysisConfig",
    "AnalysisError",
    "AnalysisSummary",
    "Roles",
    "analyze",
    "default_roles",
    "load_roles",
]
