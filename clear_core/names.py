"""The fixed vocabularies that the CLI, the app, export and the store share: one list of each.

Kept free of heavy imports: the CLI builds its argument choices from it before anything else is loaded.
"""

DEFAULT_WORKSPACE = "clear_workspace.duckdb"  # when neither --workspace nor CLEAR_STUDIO_WORKSPACE names one
ACTIONS = ("keep", "drop", "accept", "edit")  # a reviewer's decisions (the decision log also holds 'undo' entries)
EXPORT_VARIANTS = ("curated", "all")  # curated rows only, or every row with clear_* score and decision columns
FILE_TYPES = ("jsonl", "json", "csv", "parquet")  # the file types read and written; each is also the file's suffix
FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "columns")  # the dataset formats read
INGEST_FORMATS = ("auto",) + FORMATS  # what an import may ask for: a format, or detect it
EXPORT_FORMATS = ("same",) + FILE_TYPES  # what an export may write: the input's own file type, or any other
