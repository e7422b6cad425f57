"""Dedup: word hashes, MinHash signatures, LSH buckets and the components that make near-duplicate clusters."""
