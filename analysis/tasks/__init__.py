"""Synthetic tasks for channel analysis: IOI and Laundry List prompt generators and logit scoring."""
