"""Cassandra access shared by every process: sessions and schema migrations."""
