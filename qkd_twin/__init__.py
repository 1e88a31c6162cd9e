"""Digital twin of the physical plane: physics-based QKD link models, emulated QKD modules with
real post-processing, and fault / attack injection."""
