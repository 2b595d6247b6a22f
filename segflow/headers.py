"""Kafka header names segflow sets on command records (uploader) and reads (consumer).

Headers make a record traceable without decoding it: the dead-letter topic keeps them, and
the consumer can attribute even an undecodable record to its execution.
"""

EXECUTION_ID = "segflow.execution_id"
SOURCE_FILE = "segflow.file"
SOURCE_LINE = "segflow.line"
# Index of the command within its execution (0-based, deterministic for the same content).
SEQUENCE = "segflow.seq"
