"""OSDP: readers and I/O modules on RS-485 buses, through libosdp's control panel."""
