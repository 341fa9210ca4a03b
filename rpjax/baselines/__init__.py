"""Baseline defences Robust Privacy is compared with: DP-SGD and label-release baselines."""
