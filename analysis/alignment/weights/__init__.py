"""Committed weights of the in-house PointNet (``pointnet.safetensors`` + ``pointnet.json``), shipped as package data."""
