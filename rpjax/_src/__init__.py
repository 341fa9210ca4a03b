"""Private implementation; the public names are re-exported by the packages above."""
