"""What can be searched: search-space definitions and the paper's variants as named presets."""
