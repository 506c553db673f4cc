"""The fixed vocabularies that the CLI, the app, export and the store share: one list of each.

Kept free of heavy imports: the CLI builds its argument choices from it before anything else is loaded.
"""

DEFAULT_WORKSPACE = "clear_workspace.duckdb"  # when neither --workspace nor CLEAR_STUDIO_WORKSPACE names one
ACTIONS = ("keep", "drop", "accept", "edit")  # a reviewer's decisions (the decision log also holds 'undo' entries)
EXPORT_VARIANTS = ("curated", "all")  # curated rows only, or every row with clear_* score and decision columns
