"""Small torch-free helpers shared by every stage of the pipeline."""
