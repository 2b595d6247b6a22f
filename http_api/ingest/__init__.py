"""The seed-compatible ingestion API: mediarithmics imports, Village, Segmenter (issue 15)."""
