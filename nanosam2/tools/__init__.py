"""The seed repository's command-line entry points, kept working (thin shims over the library)."""
