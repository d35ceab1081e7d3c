"""Shared test set-up: one torch thread (see NOTES on OpenMP spin-waiting)."""

import torch

torch.set_num_threads(1)
