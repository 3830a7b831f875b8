"""INT8 calibration data from SA-1B and Q/DQ quantisation."""
