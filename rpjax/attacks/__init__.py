"""Model-inversion attacks (label-only BREP-MI, white-box MI-Face) and their metrics."""
