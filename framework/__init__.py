"""The framework layer: neural-network layers on chip ops, the inference engine, training."""
