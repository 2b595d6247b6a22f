"""segflow: segment-membership ingestion from import files to Cassandra via Kafka.

Shared code used by both sides (configuration, the command contract, the local stack and
database migrations) lives here; the two halves of the pipeline are the ``producer_tools``
and ``consumer`` packages.
"""

__version__ = "0.1.0"
