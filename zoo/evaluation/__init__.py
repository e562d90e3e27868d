"""Evaluation and analysis of trained models: accuracy and robustness metrics and their grids, alignment angles
between a rule's update and backprop's, learning curves, receptive-field pictures and plotting helpers."""
