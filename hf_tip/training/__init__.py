"""The one Accelerate training loop, its arguments and its checkpoint format."""
