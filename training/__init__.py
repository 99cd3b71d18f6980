"""Offline training of the pair matcher from the labelled datasets."""
