"""The resolution core: normalisation, candidates, matching, the decision policy, entity state."""
