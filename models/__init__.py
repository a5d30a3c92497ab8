"""Model definitions and tokenizers built on tinytensor."""
