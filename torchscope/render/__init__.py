"""Renderers: turn collected data (frozen dataclasses) into Rich renderables.

Renderers only read data and never import torch, so they stay cheap to import and can render any
saved ``to_dict()`` output again without the model.
"""
