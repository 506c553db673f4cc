"""Dataset formats: detect, read and write back SFT datasets.

File types: JSONL, JSON, CSV, Parquet. Dataset formats: Alpaca, ShareGPT, OpenAI/TRL messages, prompt/completion
and plain columns named by a mapping. Every row becomes a Record (prompt messages, the target response = the last
assistant turn, and the row as it came in); every bad row becomes an InputError naming file, line and field.
"""

from .dataset import apply_response, detect, read_dataset, record_columns, write_dataset
from .files import file_type_of
from .spec import FILE_TYPES, FORMATS, FormatSpec, ReadResult, Record, prompt_text

__all__ = ["FILE_TYPES", "FORMATS", "FormatSpec", "ReadResult", "Record", "apply_response", "detect",
           "file_type_of", "prompt_text", "read_dataset", "record_columns", "write_dataset"]
