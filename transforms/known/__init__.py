"""Known outputs: the index of known model outputs and the matching of crawl documents against it."""
