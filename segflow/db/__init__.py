"""Cassandra access shared by every process: sessions and probes, migrations, the table
layout, the segment registry, the membership reader and the execution store."""
