"""3D <-> text alignment (Hadgi et al. 2025): shapes, encoders, aligners, retrieval."""
