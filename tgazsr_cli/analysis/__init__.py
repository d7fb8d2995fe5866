"""Helpers of the analysis scripts (scripts/): results over several training seeds, the learning-rate rule."""
