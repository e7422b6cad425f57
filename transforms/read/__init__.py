"""Read: find the shards, open them, and turn every record into a document or a dead letter."""
