"""Curate: what an audited crawl gives to training: filtered shards and benchmark contamination."""
