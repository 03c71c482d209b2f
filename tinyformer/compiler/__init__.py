"""Model to firmware: compile driver, firmware build, ELF and stack analysis, profile, C library."""
