"""Training: the classifier's Accelerate loop, the detector's CPU loop, adaptation to a new lab,
and what they share (a time budget's plan, exact-resume checkpoints)."""
