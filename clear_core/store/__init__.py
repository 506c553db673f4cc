"""The DuckDB workspace: schema and migrations, datasets, runs, queries, the decision log.

All SQL of CLEAR Studio lives in this package, with bound parameters for every value.
Scores are floats in [0, 1], higher = more trustworthy.
"""

from .datasets import DatasetInfo, ExampleRow
from .runs import RunInfo, long_scores
from .schema import SCHEMA_VERSION
from .workspace import Workspace

__all__ = ["Workspace", "DatasetInfo", "ExampleRow", "RunInfo", "SCHEMA_VERSION", "long_scores"]
