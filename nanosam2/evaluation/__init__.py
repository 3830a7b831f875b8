"""COCO evaluation shared by every backend and by training (torch-free)."""
