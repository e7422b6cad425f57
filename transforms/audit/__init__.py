"""The audit's own passes: the one pass over the text, the checked shuffles, the final write."""
