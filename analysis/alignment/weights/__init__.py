"""Committed weights of the in-house PointNets, shipped as package data: ``pointnet.*`` (contrastive)
and ``pointnet_ae.*`` (autoencoder); ``.safetensors`` + ``.json`` config each."""
