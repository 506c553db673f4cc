"""CLEAR Studio core: find, fix and review the bad rows of an instruction-tuning dataset.

Every score in this package is a float in [0, 1], higher = more trustworthy.
This package never imports streamlit; torch and transformers are imported only when a model is loaded.
"""

__version__ = "0.1.0"
