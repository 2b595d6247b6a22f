"""The local development stack: real Kafka and Cassandra JVMs from Maven Central artifacts."""
