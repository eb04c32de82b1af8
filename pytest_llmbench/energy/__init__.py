"""Energy meters: NVML counter, NVML power sampling, RAPL, idle baseline."""
